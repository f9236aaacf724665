import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()

import config.celery  # noqa: E402, F401  (the app the web sends its tasks with: config/__init__.py)
