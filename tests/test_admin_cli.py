"""The account commands: create, list, disable, new password, as an operator runs them."""

from __future__ import annotations

from tests.admin_support import ADMIN_CONFIG, place_order, sign_in

EMAIL = "ops@glow.example"
FIRST = "first password 123"
SECOND = "second password 456"


def test_admin_accounts_from_create_to_disable(make_app):
    app = make_app(**ADMIN_CONFIG)
    runner = app.test_cli_runner()

    made = runner.invoke(
        args=["create-admin", "Ops@Glow.example", "--password-stdin"], input=FIRST + "\n"
    )
    assert made.exit_code == 0, made.output
    assert "Created admin ops@glow.example" in made.output

    listed = runner.invoke(args=["list-admins"])
    assert listed.exit_code == 0
    assert "ops@glow.example\tactive\tnever signed in" in listed.output

    session = app.test_client()
    assert sign_in(session, EMAIL, FIRST).status_code == 303
    assert "ops@glow.example\tactive\t" in runner.invoke(args=["list-admins"]).output
    assert "never signed in" not in runner.invoke(args=["list-admins"]).output

    changed = runner.invoke(args=["set-admin-password", EMAIL, "--password-stdin"], input=SECOND)
    assert changed.exit_code == 0, changed.output
    assert session.get("/admin/").status_code == 302  # the old session ended
    assert sign_in(app.test_client(), EMAIL, FIRST).status_code == 401
    session = app.test_client()
    assert sign_in(session, EMAIL, SECOND).status_code == 303

    disabled = runner.invoke(args=["disable-admin", EMAIL])
    assert disabled.exit_code == 0 and "Disabled admin ops@glow.example" in disabled.output
    assert session.get("/admin/").status_code == 302  # signed out at once
    assert sign_in(app.test_client(), EMAIL, SECOND).status_code == 401
    assert "ops@glow.example\tdisabled" in runner.invoke(args=["list-admins"]).output


def test_create_admin_prompts_for_the_password_twice(make_app):
    app = make_app(**ADMIN_CONFIG)
    runner = app.test_cli_runner()
    mismatch = runner.invoke(args=["create-admin", EMAIL], input=f"{FIRST}\nsomething else\n" * 3)
    assert mismatch.exit_code != 0
    made = runner.invoke(args=["create-admin", EMAIL], input=f"{FIRST}\n{FIRST}\n")
    assert made.exit_code == 0, made.output
    assert FIRST not in made.output  # never echoed
    place_order(app.test_client())
    assert sign_in(app.test_client(), EMAIL, FIRST).status_code == 303


def test_account_commands_refuse_bad_input_with_a_reason(make_app):
    app = make_app(**ADMIN_CONFIG)
    runner = app.test_cli_runner()
    cases = [
        (["create-admin", "not-an-email", "--password-stdin"], FIRST, "is not an email address"),
        (["create-admin", EMAIL, "--password-stdin"], "short", "at least 10 characters"),
        (["set-admin-password", "nobody@glow.example", "--password-stdin"], SECOND, "No admin"),
        (["disable-admin", "nobody@glow.example"], "", "No admin with email"),
    ]
    for args, stdin, message in cases:
        result = runner.invoke(args=args, input=stdin)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output
    assert (
        runner.invoke(args=["create-admin", EMAIL, "--password-stdin"], input=FIRST).exit_code == 0
    )
    again = runner.invoke(args=["create-admin", EMAIL.upper(), "--password-stdin"], input=FIRST)
    assert again.exit_code == 1 and "already exists" in again.output
    assert "No admins yet" not in runner.invoke(args=["list-admins"]).output
