"""Extension instances, created unbound here and bound to the app in ``create_app``."""

from flask_compress import Compress
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from bikshop.api import BikshopApi
from bikshop.security import client_address

# Stable constraint names, so migrations can alter them on PostgreSQL and SQLite alike.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
compress = Compress()  # per view (@compress.compressed()), not app-wide
api = BikshopApi()
# No default limits: only the routes named in bikshop/ratelimit.py are limited.
limiter = Limiter(key_func=client_address, default_limits=[])
