"""Indian GST: GSTIN checks, states and place of supply, and tax split out of inclusive prices.

Plain functions over Decimal, no Flask and no database, so config validation can use them too.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

PAISA = Decimal("0.01")
_GSTIN = re.compile(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class State:
    """A state or union territory with its GST code (the first two digits of a GSTIN)."""

    code: str
    name: str

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


# GST state codes with the names and abbreviations people type into address forms.
_STATES = [
    ("01", "Jammu and Kashmir", "JK", "J&K"),
    ("02", "Himachal Pradesh", "HP"),
    ("03", "Punjab", "PB"),
    ("04", "Chandigarh", "CH"),
    ("05", "Uttarakhand", "UK", "UT", "Uttaranchal"),
    ("06", "Haryana", "HR"),
    ("07", "Delhi", "DL", "New Delhi", "NCT of Delhi", "National Capital Territory of Delhi"),
    ("08", "Rajasthan", "RJ"),
    ("09", "Uttar Pradesh", "UP"),
    ("10", "Bihar", "BR", "BH"),
    ("11", "Sikkim", "SK"),
    ("12", "Arunachal Pradesh", "AR"),
    ("13", "Nagaland", "NL"),
    ("14", "Manipur", "MN"),
    ("15", "Mizoram", "MZ"),
    ("16", "Tripura", "TR"),
    ("17", "Meghalaya", "ML"),
    ("18", "Assam", "AS"),
    ("19", "West Bengal", "WB"),
    ("20", "Jharkhand", "JH"),
    ("21", "Odisha", "OD", "OR", "Orissa"),
    ("22", "Chhattisgarh", "CG", "CT"),
    ("23", "Madhya Pradesh", "MP"),
    ("24", "Gujarat", "GJ"),
    (
        "26",
        "Dadra and Nagar Haveli and Daman and Diu",
        "DH",
        "DN",
        "DD",
        "DNH",
        "Daman and Diu",
        "Dadra and Nagar Haveli",
        "Daman",
        "Diu",
        "Silvassa",
    ),
    ("27", "Maharashtra", "MH"),
    ("29", "Karnataka", "KA"),
    ("30", "Goa", "GA"),
    ("31", "Lakshadweep", "LD"),
    ("32", "Kerala", "KL"),
    ("33", "Tamil Nadu", "TN"),
    ("34", "Puducherry", "PY", "Pondicherry"),
    ("35", "Andaman and Nicobar Islands", "AN", "Andaman and Nicobar"),
    ("36", "Telangana", "TS", "TG"),
    ("37", "Andhra Pradesh", "AP"),
    ("38", "Ladakh", "LA"),
    ("97", "Other Territory", "OT"),
]
STATES = {code: State(code, name) for code, name, *_ in _STATES}
OUTSIDE_INDIA = State("96", "Outside India")
# Union territories without a legislature: a supply within one is taxed CGST + UTGST (UTGST Act,
# 2017), not SGST. Delhi, Puducherry and Jammu and Kashmir have legislatures and levy SGST.
_UTGST_TERRITORIES = frozenset(("04", "26", "31", "35", "38"))


def state_tax_name(seller_state: State | None) -> str:
    """What the state's half of an intra-state supply's GST is called where the seller is."""
    return "UTGST" if seller_state and seller_state.code in _UTGST_TERRITORIES else "SGST"


def _key(text: str) -> str:
    text = text.lower().replace("&", " and ")
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text).split())


_LOOKUP = {_key(alias): STATES[code] for code, *aliases in _STATES for alias in [code, *aliases]}


def find_state(text: str | None) -> State | None:
    """The state named by ``text`` ("Karnataka", "KA", "29", "karnataka."), or None."""
    if not text:
        return None
    return _LOOKUP.get(_key(text))


# What an address may call India: ISO 3166's two- and three-letter codes, and the names.
_INDIA = frozenset(("in", "ind", "india", "bharat", "republic of india", "bharat ganarajya"))


def in_india(country_code: str | None, country: str | None) -> bool:
    """Whether an address with this ``countryCode`` and ``country`` is in India.

    The code decides when there is one (IN, IND: India; any other: abroad). Bik's guide names
    only ``country``, so without a code the name decides: India by name or a near spelling of
    it ("Inida"), abroad by any other name; an address naming neither is India's, the
    country a shop on Bik sells in. A state code is never read without this: "CA" in the
    United States is not Chhattisgarh's, nor "GA" Goa's."""
    code = _key(country_code or "")
    if code:
        return code in _INDIA
    name = _key(country or "")
    if not name or name in _INDIA:
        return True
    return difflib.SequenceMatcher(a=name, b="india").ratio() >= _NEAR


def delivery_state(state: str | None, pin: str | None) -> State | None:
    """The state of a delivery address in India: the one it names (as :func:`find_state` reads
    it); else the one its PIN code's first three digits belong to; else the state whose name
    its text nearly spells (a typo: "Karnatka", "Tamilnadu"); else None."""
    return find_state(state) or state_of_pin(pin) or _nearly_spelt(state)


def state_of_pin(pin: str | None) -> State | None:
    """The state of a six-digit Indian PIN code, where its first three digits belong to one
    state only (India Post's ranges); None otherwise."""
    digits = "".join((pin or "").split())
    if not re.fullmatch(r"[1-9][0-9]{5}", digits):
        return None
    pin = int(digits)
    code = next((code for first, last, code in _PIN_ENCLAVES if first <= pin <= last), None)
    code = code or _PIN_STATES.get(pin // 1000)
    return STATES[code] if code else None


# India Post's PIN ranges by their first three digits. A prefix two states or territories share
# (160 Chandigarh and Mohali, 244/246/247/262 Uttar Pradesh and Uttarakhand, 362/396 Gujarat and
# Dadra and Nagar Haveli and Daman and Diu, 605/609 Tamil Nadu and Puducherry, 533 Andhra
# Pradesh and Yanam) is left out: the state is then not guessed from the PIN. Where the other
# territory's PIN codes are few and known (_PIN_ENCLAVES: Mahe's 673310 among Kerala's 673,
# Lakshadweep's 682551-682559 among Kerala's 682), the prefix is the state's and those codes
# the territory's.
_PIN_RANGES = [
    (110, 110, "07"), (121, 136, "06"), (140, 159, "03"), (171, 177, "02"), (180, 193, "01"),
    (194, 194, "38"), (201, 243, "09"), (245, 245, "09"), (248, 249, "05"), (250, 261, "09"),
    (263, 263, "05"), (264, 285, "09"), (301, 345, "08"), (360, 361, "24"), (363, 395, "24"),
    (400, 402, "27"), (403, 403, "30"), (404, 445, "27"), (450, 488, "23"), (490, 497, "22"),
    (500, 509, "36"), (515, 532, "37"), (534, 535, "37"), (560, 591, "29"), (600, 604, "33"),
    (606, 608, "33"), (610, 643, "33"), (670, 695, "32"),
    (700, 736, "19"), (737, 737, "11"), (738, 743, "19"), (744, 744, "35"), (751, 770, "21"),
    (781, 788, "18"), (790, 792, "12"), (793, 794, "17"), (795, 795, "14"), (796, 796, "15"),
    (797, 798, "13"), (799, 799, "16"), (800, 812, "10"), (813, 816, "20"), (821, 821, "10"),
    (822, 822, "20"), (823, 824, "10"), (825, 835, "20"), (841, 855, "10"),
]  # fmt: skip
_PIN_ENCLAVES = [(673310, 673310, "34"), (682551, 682559, "31")]  # six-digit ranges
_PIN_STATES = {
    prefix: code for first, last, code in _PIN_RANGES for prefix in range(first, last + 1)
}


def _nearly_spelt(text: str | None) -> State | None:
    """The state whose name ``text`` is a near spelling of, when no other state's name is
    nearly as near ("Madya Pradesh" is Madhya's; Andhra Pradesh is a letter further off)."""
    key = _key(text or "")
    if len(key) < 5:
        return None  # a short code mistyped is another state's code, not a typo of a name
    matcher = difflib.SequenceMatcher(b=key)
    scores = {}
    for name in _NAMES:
        matcher.set_seq1(name)
        state = _LOOKUP[name]
        scores[state] = max(scores.get(state, 0.0), matcher.ratio())
    (best, score), *others = sorted(scores.items(), key=lambda pair: -pair[1])
    runner_up = others[0][1] if others else 0.0
    return best if score >= _NEAR and score - runner_up >= _CLEARLY_NEARER else None


_NEAR, _CLEARLY_NEARER = 0.8, 0.05


_NAMES = [key for key in _LOOKUP if len(key) >= 5 and not key.isdigit()]


def gstin_problem(gstin: str) -> str | None:
    """Why ``gstin`` is not a valid GSTIN (format, state code, check digit), or None."""
    if not _GSTIN.match(gstin):
        return "must be 15 characters like 29ABCDE1234F1Z5"
    if gstin[:2] not in STATES:
        return f"starts with {gstin[:2]}, which is not a GST state code"
    if gstin_check_digit(gstin[:14]) != gstin[14]:
        return "has a wrong check digit (last character); look for a typo"
    return None


def gstin_check_digit(first14: str) -> str:
    """The 15th character of a GSTIN: a Luhn mod 36 checksum over the first 14."""
    total = 0
    for index, char in enumerate(first14):
        product = _ALPHABET.index(char) * (2 if index % 2 else 1)
        total += product // 36 + product % 36
    return _ALPHABET[(36 - total % 36) % 36]


@dataclass(frozen=True)
class TaxLine:
    """One taxed line: the tax-inclusive amount after discount, and how it splits."""

    label: str
    hsn: str | None
    amount: Decimal
    taxable: Decimal
    cgst: Decimal
    sgst: Decimal
    igst: Decimal

    @property
    def tax(self) -> Decimal:
        return self.cgst + self.sgst + self.igst


@dataclass(frozen=True)
class TaxBreakdown:
    """The whole order's tax: per line, and the sums (which add up to the order total exactly)."""

    rate: Decimal
    intra_state: bool
    lines: list[TaxLine]
    state_tax: str = "SGST"  # or UTGST: :func:`state_tax_name`; the ``sgst`` amounts either way

    def _sum(self, attribute: str) -> Decimal:
        return sum((getattr(line, attribute) for line in self.lines), Decimal("0.00"))

    @property
    def amount(self) -> Decimal:
        return self._sum("amount")

    @property
    def taxable(self) -> Decimal:
        return self._sum("taxable")

    @property
    def cgst(self) -> Decimal:
        return self._sum("cgst")

    @property
    def sgst(self) -> Decimal:
        return self._sum("sgst")

    @property
    def igst(self) -> Decimal:
        return self._sum("igst")

    @property
    def tax(self) -> Decimal:
        return self._sum("tax")


def split_inclusive(
    label: str, hsn: str | None, amount: Decimal, rate: Decimal, intra_state: bool
) -> TaxLine:
    """Split a tax-inclusive ``amount`` into taxable value and tax at ``rate`` percent.

    Each tax is rounded half up to the paisa and the taxable value is what remains, so
    taxable + tax is the inclusive amount exactly; CGST and SGST are always equal halves.
    """
    amount = Decimal(amount).quantize(PAISA)
    zero = Decimal("0.00")
    if intra_state:
        half = _round(amount * (rate / 2) / (100 + rate))
        return TaxLine(label, hsn, amount, amount - 2 * half, half, half, zero)
    igst = _round(amount * rate / (100 + rate))
    return TaxLine(label, hsn, amount, amount - igst, zero, zero, igst)


def allocate(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Share ``amount`` over ``weights`` pro rata in whole paise that add up to it exactly.

    Largest remainder: each share is floored to the paisa, then the leftover paise go to the
    largest remainders (earliest line first on ties). No share exceeds its weight while
    ``amount`` is at most the sum of the weights.
    """
    total = sum(weights, Decimal("0"))
    if amount == 0 or total == 0:
        return [Decimal("0.00") for _ in weights]
    exact = [amount * weight / total for weight in weights]
    shares = [share.quantize(PAISA, rounding=ROUND_FLOOR) for share in exact]
    leftover = int((amount - sum(shares, Decimal("0"))) / PAISA)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for index in by_remainder[:leftover]:
        shares[index] += PAISA
    return shares


def tax_breakdown(
    goods: list[tuple[str, str | None, Decimal]],
    *,
    shipping: Decimal,
    shipping_hsn: str | None,
    discount: Decimal,
    rate: Decimal,
    intra_state: bool,
    state_tax: str = "SGST",
) -> TaxBreakdown:
    """Tax for an order whose prices include GST.

    ``goods`` is (label, HSN, inclusive line total) per line. The discount is a reduction
    shown on the invoice, so it lowers the taxable value: it is shared over the goods pro
    rata, and only what exceeds the goods' value comes off shipping. Shipping by the seller
    is part of a composite supply and is taxed at the goods' rate, as its own line.
    """
    goods_value = sum((value for _, _, value in goods), Decimal("0"))
    on_goods = min(discount, goods_value)
    shares = allocate(on_goods, [value for _, _, value in goods])
    lines = [
        split_inclusive(label, hsn, value - share, rate, intra_state)
        for (label, hsn, value), share in zip(goods, shares, strict=True)
    ]
    shipping_net = shipping - (discount - on_goods)
    if shipping_net > 0:
        lines.append(split_inclusive("Shipping", shipping_hsn, shipping_net, rate, intra_state))
    return TaxBreakdown(rate=rate, intra_state=intra_state, lines=lines, state_tax=state_tax)


def _round(value: Decimal) -> Decimal:
    return value.quantize(PAISA, rounding=ROUND_HALF_UP)
