from rest_framework.routers import SimpleRouter

UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


class ApiRouter(SimpleRouter):
    """Routes that answer with or without a trailing slash (clients usually send none)."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
