from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # accounts must not import webhooks: the outbox rows of an event are written by this
        # receiver, inside the transaction that records the event.
        from accounts.models import Event
        from accounts.services import event_recorded
        from webhooks.services import outbox_on_event_recorded

        event_recorded.connect(
            outbox_on_event_recorded, sender=Event, dispatch_uid="webhooks.outbox"
        )
