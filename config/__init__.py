"""The Django project: settings, URLs, the Celery app, WSGI/ASGI entry points.

Celery's Django layout imports the Celery app here, so that every process that loads the settings has
it. Leasehold imports it where tasks are sent or run instead: the web (config/wsgi.py, config/asgi.py),
`manage.py` for every command that may send one, and `celery -A config` (which finds config/celery.py).
Loading the settings then imports no Celery: the reclaimer's CronJob never sends a task and starts
without it (README "Performance").
"""
