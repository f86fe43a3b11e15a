"""What every page's template is given: the shared vocabulary (``agentproj.vocabulary``) that
the page embeds for its scripts, and the limits its forms hold to."""

from agentproj.vocabulary import PAGE_LIMITS, PAGE_VOCABULARY


def vocabulary(request) -> dict:
    return {"vocabulary": PAGE_VOCABULARY, "limits": PAGE_LIMITS}
