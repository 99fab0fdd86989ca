"""The door Bik knocks on at checkout: placeOrder and getOrder."""

from bikshop.bik.views import blp

__all__ = ["blp"]
