"""The refusals services raise and the API turns into ``{"code", "detail"}`` answers."""


class ServiceError(Exception):
    code = "error"
    detail = "The request could not be completed."
