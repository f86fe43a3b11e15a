"""``Cache-Control: no-store`` on every answer but static files.

Pages and API answers show a user's conversations, tool arguments and approvals: no browser
cache, proxy or shared computer should keep a copy after the user leaves. Static files are the
same for everyone and may be cached.
"""

from django.conf import settings
from django.utils.cache import patch_cache_control
from django.utils.deprecation import MiddlewareMixin


class NoStoreMiddleware(MiddlewareMixin):
    def process_response(self, request, response):
        if not request.path_info.startswith("/" + settings.STATIC_URL.lstrip("/")):
            patch_cache_control(response, no_store=True)
        return response
