"""Static files, served by the app itself so that one command runs everything.

They go through a URL route, not a handler in front of Django, so that every middleware answers
for them as for any page: nosniff, frame options, CSP, Permissions-Policy.
"""

from asgiref.sync import sync_to_async
from django.contrib.staticfiles.views import serve


async def serve_static(request, path):
    response = await sync_to_async(serve, thread_sensitive=False)(request, path, insecure=True)
    if response.streaming and not response.is_async:
        # A FileResponse reads its file synchronously; read it in a thread, as Django's own
        # ASGIStaticFilesHandler does, rather than block the event loop.
        parts = await sync_to_async(list, thread_sensitive=False)(response.streaming_content)
        response.streaming_content = _aiter(parts)
    return response


async def _aiter(parts):
    for part in parts:
        yield part
