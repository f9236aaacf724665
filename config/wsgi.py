import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# A web server process needs the URLconf (with it the API's views, Django REST framework and
# drf-spectacular) and the Kubernetes client (resource pages read from the cluster). django.setup()
# no longer imports them (manage.py commands and the reclaimer's CronJob never use them): import them
# here, as the process starts, so that its first request does not wait for them.
from django.urls import get_resolver  # noqa: E402

import config.celery  # noqa: E402, F401  (the app the web sends its tasks with: config/__init__.py)
from provisioning import cluster  # noqa: E402

get_resolver().url_patterns  # noqa: B018  (imports ROOT_URLCONF and every module it includes)
cluster.load_client()
