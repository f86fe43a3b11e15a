"""The refusals services raise and the API turns into ``{"code", "detail"}`` answers."""


class ServiceError(Exception):
    code = "error"
    detail = "The request could not be completed."

    def extra(self) -> dict:
        """Fields the answer carries besides ``code`` and ``detail``."""
        return {}

    def retry_after(self) -> int | None:
        """Seconds after which asking again may succeed (the ``Retry-After`` header)."""
        return None
