import logging
from logging.config import fileConfig

import click
from alembic import context
from alembic.util import CommandError
from flask import current_app
from sqlalchemy import text
from sqlalchemy.exc import InternalError, OperationalError

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging.
# This line sets up loggers basically.
fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

# The advisory lock bikshop's upgrades take turns on (PostgreSQL): any fixed number of its own.
_LOCK = 0x62696B73686F70  # "bikshop"


def get_engine():
    return current_app.extensions["migrate"].db.engine


def get_engine_url():
    try:
        return get_engine().url.render_as_string(hide_password=False).replace("%", "%%")
    except AttributeError:
        return str(get_engine().url).replace("%", "%%")


# add your model's MetaData object here
# for 'autogenerate' support
# from myapp import mymodel
# target_metadata = mymodel.Base.metadata
config.set_main_option("sqlalchemy.url", get_engine_url())
target_db = current_app.extensions["migrate"].db

# other values from the config, defined by the needs of env.py,
# can be acquired:
# my_important_option = config.get_main_option("my_important_option")
# ... etc.


def get_metadata():
    if hasattr(target_db, "metadatas"):
        return target_db.metadatas[None]
    return target_db.metadata


def run_migrations_offline():
    """Run migrations in 'offline' mode.

    This configures the context with just a URL
    and not an Engine, though an Engine is acceptable
    here as well.  By skipping the Engine creation
    we don't even need a DBAPI to be available.

    Calls to context.execute() here emit the given string to the
    script output.

    """
    url = config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=get_metadata(), literal_binds=True)

    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run migrations in 'online' mode.

    In this scenario we need to create an Engine
    and associate a connection with the context.

    """

    # this callback is used to prevent an auto-migration from being generated
    # when there are no changes to the schema
    # reference: http://alembic.zzzcomputing.com/en/latest/cookbook.html
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    conf_args = current_app.extensions["migrate"].configure_args
    if conf_args.get("process_revision_directives") is None:
        conf_args["process_revision_directives"] = process_revision_directives

    from bikshop.ops import in_memory_finding

    in_memory = in_memory_finding(current_app.config)
    if in_memory:  # migrated, then gone as the command exits
        raise CommandError(f"{in_memory.variable} {in_memory.message}")

    from bikshop.sqlite_access import DatabaseFilesError, access_problem, root_warning

    connectable = get_engine()
    if warning := root_warning(str(connectable.url.render_as_string(False))):
        click.echo(warning, err=True)  # the files this makes would be root's

    try:
        with connectable.connect() as connection:
            context.configure(connection=connection, target_metadata=get_metadata(), **conf_args)

            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    # Two servers starting at once (each unit upgrades before serving) take
                    # turns: the second reads the version after the first has committed, and
                    # has nothing left to do. Held until this transaction ends.
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
                context.run_migrations()
    except (OperationalError, InternalError) as exc:
        # The database is down, unknown, refuses the password, is read-only or full: one line
        # (Flask-Migrate prints it and exits 1), not a traceback; never the URL's password.
        from bikshop.ops import database_error_line

        url = str(connectable.url.render_as_string(False))
        reason = database_error_line(exc, url, migrating=True)
        message = f"BIKSHOP_DATABASE_URL: cannot use the database: {reason}"
        if access_problem(exc, url, unopened=True):
            # SQLite files this user cannot open (made by a db upgrade run as root): exit 3,
            # so the unit stops restarting, instead of Flask-Migrate's exit 1 (tried again).
            raise DatabaseFilesError(message) from None
        raise CommandError(message) from None


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
