"""``/openapi.json``: a valid OpenAPI 3 document of both Bik endpoints, from the same schemas."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from bikshop import create_app
from tests.bik import SAMPLE_ORDER

CONFIG = {
    "ENV": "production",
    "SECRET_KEY": "openapi-test-secret-0123456789abcdef",
    "BIK_AUTH": "none",
    "DATABASE_URL": "sqlite://",
}


@pytest.fixture(scope="module")
def document() -> dict:
    response = create_app(CONFIG).test_client().get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def resolve(document: dict, node: dict) -> dict:
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = document["components"][kind][name]
    return node


def body_schema(document: dict, node: dict) -> dict:
    return resolve(document, resolve(document, node)["content"]["application/json"]["schema"])


def test_the_document_is_valid_openapi_3(document):
    validate(document)
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {"/bik/placeOrder", "/bik/getOrder"}


@pytest.mark.parametrize(
    ("path", "request_schema", "required"),
    [
        ("/bik/placeOrder", "PlaceOrderRequest", {"draftOrderId", "paymentPending", "order"}),
        ("/bik/getOrder", "GetOrderRequest", {"orderId"}),
    ],
)
def test_each_endpoint_documents_its_request_and_answers(document, path, request_schema, required):
    operation = document["paths"][path]["post"]
    assert set(document["paths"][path]) == {"post"}
    request = operation["requestBody"]["content"]["application/json"]["schema"]
    assert request["$ref"].endswith(f"/{request_schema}")
    assert set(resolve(document, request)["required"]) == required
    responses = operation["responses"]
    for status in ("400", "401", "413", "415", "422", "503"):
        error = body_schema(document, responses[status])
        assert set(error["properties"]) == {"error"}
        detail = resolve(document, error["properties"]["error"])
        assert set(detail["properties"]) == {"status", "code", "message", "fields"}
    assert ("409" if path.endswith("placeOrder") else "404") in responses
    envelope = body_schema(document, responses["200"])
    order = resolve(document, envelope["properties"]["order"])
    assert {
        "id",
        "name",
        "status",
        "paymentStatus",
        "fulfillmentStatus",
        "items",
        "total",
        "subTotal",
        "shippingCharge",
        "discount",
        "currency",
        "address",
        "phoneNumber",
        "email",
        "invoiceUrl",
        "deliveryInfo",
        "partnersData",
    } <= set(order["properties"])
    item = resolve(document, order["properties"]["items"]["items"])
    assert {"name", "variantName", "variantId", "productId", "quantity", "price", "image"} <= set(
        item["properties"]
    )


def test_the_incoming_order_schema_matches_what_bik_sends(document):
    schemas = document["components"]["schemas"]
    incoming = schemas["IncomingOrder"]
    assert {"phoneNumber", "items", "subTotal", "total"} <= set(incoming["required"])
    assert incoming["properties"]["subTotal"]["type"] == "number"
    for optional in ("shippingCharge", "discount"):  # none, null or absent: 0
        assert optional not in incoming["required"]
        documented = incoming["properties"][optional]
        assert documented["nullable"] is True and documented["default"] == 0
    item = schemas["Item"]
    assert {"productId", "variantId", "name", "quantity", "price"} <= set(item["required"])
    assert item["properties"]["quantity"]["type"] == "integer"
    assert schemas["PlaceOrderRequest"]["properties"]["paymentPending"]["type"] == "boolean"


def test_the_api_key_scheme_names_the_configured_header(make_app):
    app = make_app(BIK_AUTH="apikey:X-Brand-Key:s3cret-value")
    document = app.test_client().get("/openapi.json").get_json()
    scheme = document["components"]["securitySchemes"]["apiKey"]
    assert scheme == {"type": "apiKey", "in": "header", "name": "X-Brand-Key"}
    assert "s3cret-value" not in str(document)


def test_the_document_states_the_rules_the_endpoints_enforce(document):
    """A client generating requests from the document (schemathesis, Bik's own tooling) should
    meet the same limits as the endpoints, and find every key of an answer marked required."""
    schemas = document["components"]["schemas"]
    item, order = schemas["Item"]["properties"], schemas["IncomingOrder"]["properties"]
    assert (item["quantity"]["minimum"], item["quantity"]["maximum"]) == (1, 100_000)
    assert item["price"]["minimum"] == 0 and order["total"]["minimum"] == 0
    assert order["items"]["minItems"] == 1
    assert {"integer", "string"} == {kind["type"] for kind in item["productId"]["oneOf"]}
    # What the document takes, the endpoints take (schemathesis probe): a catalog id with a
    # control character, and an image URL past 2,048 characters (left out, not refused).
    from openapi_schema_validator import OAS30Validator

    product = OAS30Validator(item["productId"])
    assert product.is_valid("SKU-1") and product.is_valid(40946134352009)
    assert not product.is_valid("\x12x") and not product.is_valid("a b")
    assert not product.is_valid("x\x85")
    assert "maxLength" not in item["image"] and "left out" in item["image"]["description"]
    assert "two decimals" in item["price"]["description"]
    assert order["currency"]["pattern"] and order["phoneNumber"]["pattern"]
    answer = schemas["BikOrderOut"]
    assert set(answer["required"]) == set(answer["properties"])
    assert answer["properties"]["paymentStatus"]["enum"] == [
        "pending",
        "paid",
        "partially_refunded",
        "refunded",
        "voided",  # a cancelled order nobody paid
    ]
    assert set(schemas["ItemOut"]["required"]) == set(schemas["ItemOut"]["properties"])
    for error in ("ErrorEnvelope", "ErrorBody", "ErrorDetail"):
        assert set(schemas[error]["required"]) == set(schemas[error]["properties"]), error
    placed = document["paths"]["/bik/placeOrder"]["post"]["responses"]["200"]
    assert placed["headers"]["Idempotent-Replayed"]["schema"] == {
        "type": "string",
        "enum": ["true"],
    }


def _security_of(settings: dict) -> tuple[dict, dict]:
    document = create_app({**CONFIG, **settings}).test_client().get("/openapi.json").get_json()
    validate(document)  # every requirement names a declared scheme
    operations = {path: document["paths"][path]["post"] for path in document["paths"]}
    return document, {path: operation.get("security") for path, operation in operations.items()}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"BIK_AUTH": "bearer:t0ken"}, ([{"bearer": []}], [{"bearer": []}])),
        ({"BIK_AUTH": "basic:bik:pw"}, ([{"basic": []}], [{"basic": []}])),
        ({"BIK_AUTH": "none"}, ([], [])),  # stated: no credentials, not left unsaid
        (
            {"BIK_AUTH": "apikey:X-Brand-Key:k3y", "BIK_GET_ORDER_AUTH": "bearer:t0ken"},
            ([{"apiKey": []}], [{"bearer": []}]),
        ),
        (
            {"BIK_AUTH": "none", "BIK_PLACE_ORDER_AUTH": "basic:bik:pw"},
            ([{"basic": []}], []),
        ),
        (
            {
                "BIK_PLACE_ORDER_AUTH": "apikey:X-Place-Key:a",
                "BIK_GET_ORDER_AUTH": "apikey:X-Get-Key:b",
            },
            ([{"apiKey-X-Place-Key": []}], [{"apiKey-X-Get-Key": []}]),
        ),
    ],
    ids=["bearer", "basic", "none", "apikey+bearer", "basic+none", "two-apikeys"],
)
def test_each_operation_requires_the_scheme_this_deployment_configured(settings, expected):
    """A client generated from the document (Bik's tooling, schemathesis) sends the right
    credentials to each endpoint; the requirement follows BIKSHOP_BIK_AUTH and its per-endpoint
    overrides, app by app."""
    document, security = _security_of({"BIK_AUTH": "none", **settings})
    assert (security["/bik/placeOrder"], security["/bik/getOrder"]) == expected
    schemes = document["components"]["securitySchemes"]
    for requirement in (*expected[0], *expected[1]):
        (name,) = requirement
        if name.startswith("apiKey-"):
            assert schemes[name]["name"] == name.removeprefix("apiKey-")
    assert "k3y" not in str(document) and "t0ken" not in str(document)


def test_a_later_app_documents_its_own_auth_not_an_earlier_ones():
    _security_of({"BIK_AUTH": "bearer:t0ken"})
    _, security = _security_of({"BIK_AUTH": "basic:bik:pw"})
    assert security == {"/bik/placeOrder": [{"basic": []}], "/bik/getOrder": [{"basic": []}]}


@pytest.mark.parametrize(
    ("schema", "key"), [("IncomingOrder", "address"), ("BikOrderOut", "address")]
)
def test_a_nullable_address_is_the_address_or_null_not_any_object(document, schema, key):
    """apispec wrote a nullable nested object as anyOf [Address, any object or null]: a
    validator (or a client generated from the document) then checked nothing in an address.
    The document now takes the address's own schema, or null."""
    from openapi_schema_validator import OAS30Validator

    schemas = document["components"]["schemas"]
    address = {"components": document["components"], **schemas[schema]["properties"][key]}
    validator = OAS30Validator(address)
    # Bik's sample address, with every key an answer's address has (all required there).
    (own,) = [branch for branch in address["anyOf"] if "$ref" in branch]
    good = dict.fromkeys(resolve(document, own)["properties"]) | SAMPLE_ORDER["order"]["address"]
    assert validator.is_valid(None)
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "zip": 560102})
    assert not validator.is_valid({**good, "city": ["Bengaluru"]})
    assert not validator.is_valid("Bengaluru")
