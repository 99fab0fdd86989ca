"""The database models; importing this package registers every table."""

from bikshop.models.admin import AdminSession, AdminUser
from bikshop.models.orders import (
    FULFILLMENT_STATUSES,
    ORDER_STATUSES,
    PAYMENT_STATUSES,
    Counter,
    Order,
    OrderEvent,
    OrderItem,
)
from bikshop.models.payments import Payment, PaymentLink, Refund, WebhookEvent

__all__ = [
    "FULFILLMENT_STATUSES",
    "ORDER_STATUSES",
    "PAYMENT_STATUSES",
    "AdminSession",
    "AdminUser",
    "Counter",
    "Order",
    "OrderEvent",
    "OrderItem",
    "Payment",
    "PaymentLink",
    "Refund",
    "WebhookEvent",
]
