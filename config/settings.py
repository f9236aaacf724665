"""Leasehold settings: everything comes from environment variables (CONTRACT.md §1).

Production differs from development only by the environment; there are no per-environment branches.
"""

from __future__ import annotations

import re
import secrets
import warnings
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .email import email_settings
from .env import env, secret
from .kubernetes import ingress_domains, pod_security_levels, pod_security_version
from .ldap import ldap_settings

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = secret("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false.")
    # Development only: a fresh key per process (sessions do not survive a restart).
    SECRET_KEY = secrets.token_urlsafe(50)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # The admin, without importing every admin module in each process that starts Django (config/admin_app.py).
    "config.admin_app.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "axes",
    "knox",
    "django_filters",
    "django_htmx",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "requests_app",
    "approvals",
    "provisioning",
    "leases",
    "accounts",
]

MIDDLEWARE = [
    # First: the log context (request id) covers every other middleware's lines.
    "requests_app.logs.RequestContextMiddleware",
    # Before the host and HTTPS checks: Prometheus scrapes the pod by its address, over plain HTTP.
    "config.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the site's CSS and JS, htmx, the admin's, Swagger UI's) come from the service itself.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "requests_app.sessions.IdleSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
# A connection kept between requests or tasks is checked before it is used again (a restarted
# PostgreSQL or a dropped session costs a reconnect, not an error).
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", env.bool("CONN_HEALTH_CHECKS", default=True))
# A Celery pool process runs one task after another on one thread: it keeps its connection between
# tasks for this long (config/celery.py closes it around a task once it is older, unusable or broken),
# instead of opening a PostgreSQL session per task. Default: CONN_MAX_AGE when that is set, else
# 300 s. The web's default stays 0: runserver starts a thread per request.
LEASEHOLD_WORKER_CONN_MAX_AGE = env.int(
    "LEASEHOLD_WORKER_CONN_MAX_AGE", default=DATABASES["default"]["CONN_MAX_AGE"] or 300
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- identity -------------------------------------------------------------------------------------
globals().update(ldap_settings())
LDAP_TEAM_GROUP_PREFIX = env.str("LDAP_TEAM_GROUP_PREFIX", default="team-")
LDAP_ADMIN_GROUP = env.str("LDAP_ADMIN_GROUP", default="leasehold-admins")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- logins and API tokens (accounts/) ------------------------------------------------------------
# django-axes counts failed logins per username *and* client address, in the database: every replica
# sees the same counts, with or without Redis. After AXES_FAILURE_LIMIT failures within
# AXES_COOLOFF_MINUTES, that pair is refused — the right password too — until AXES_COOLOFF_MINUTES
# have passed without an attempt (each refused attempt starts the cool-off again).
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_MINUTES = env.float("AXES_COOLOFF_MINUTES", default=30.0)
AXES_COOLOFF_TIME = timedelta(minutes=AXES_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
AXES_USERNAME_CALLABLE = "accounts.lockout.lockout_username"
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.client_ip"
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_MINUTES <= 0:
    raise ImproperlyConfigured("AXES_FAILURE_LIMIT must be at least 1 and AXES_COOLOFF_MINUTES above 0.")
# How many reverse proxies (an ingress controller, a load balancer) stand in front of the service and
# append the address they saw to X-Forwarded-For. 0: the peer address is the client's, and a client's
# own X-Forwarded-For is ignored. Too high a number lets clients choose their address.
LEASEHOLD_PROXY_COUNT = env.int("LEASEHOLD_PROXY_COUNT", default=0)
# API tokens (django-rest-knox): only a digest is stored; each token expires after this many hours.
KNOX_TOKEN_MODEL = "accounts.ApiToken"
# Knox's own migrations would make a table for its model, which ours replaces.
MIGRATION_MODULES = {"knox": None}
LEASEHOLD_TOKEN_TTL_HOURS = env.float("LEASEHOLD_TOKEN_TTL_HOURS", default=10.0)
if LEASEHOLD_TOKEN_TTL_HOURS <= 0:
    raise ImproperlyConfigured("LEASEHOLD_TOKEN_TTL_HOURS must be above 0.")
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=LEASEHOLD_TOKEN_TTL_HOURS),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}
# `POST /api/v1/auth/token/` calls per client address (DRF rate: N/second, N/minute, N/hour).
LEASEHOLD_TOKEN_THROTTLE_RATE = env.str("LEASEHOLD_TOKEN_THROTTLE_RATE", default="20/min")
if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", LEASEHOLD_TOKEN_THROTTLE_RATE):
    raise ImproperlyConfigured(
        "LEASEHOLD_TOKEN_THROTTLE_RATE must look like 20/min (a count per s, min, hour or day), "
        f"not {LEASEHOLD_TOKEN_THROTTLE_RATE!r}."
    )
# A token user's LDAP groups (so their teams and approver groups) are re-read at most this often.
LEASEHOLD_LDAP_REFRESH_SECONDS = env.int("LEASEHOLD_LDAP_REFRESH_SECONDS", default=300)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# The production server (the image, `make serve`) runs `collectstatic` first and sets this: WhiteNoise then
# serves only STATIC_ROOT, with content-hashed names cached for ever by browsers and gzip copies
# made once at build time. Without it (`make run`, the tests, a checkout), WhiteNoise serves the files
# where the finders find them, so nothing needs collecting; and a missing STATIC_ROOT is not worth a warning.
LEASEHOLD_STATIC_MANIFEST = env.bool("LEASEHOLD_STATIC_MANIFEST", default=False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if LEASEHOLD_STATIC_MANIFEST
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not LEASEHOLD_STATIC_MANIFEST
warnings.filterwarnings("ignore", message="No directory at: ", category=UserWarning)

# --- HTTP security (README "Headers, sessions and the browser") --------------------------------------
# Secure by default whenever DEBUG is false; each setting can be overridden by its variable.
# TLS ends at the ingress, which tells the service the original scheme in X-Forwarded-Proto. Only
# trust that header behind a proxy that sets it (and overwrites a client's); empty: trust nothing.
_proxy_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", default="" if DEBUG else "X-Forwarded-Proto").strip()
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# The kubelet's probes and Prometheus call the pod over plain HTTP: never redirect them.
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz|metrics)/?$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=SESSION_COOKIE_SECURE)
# Idle timeout: a session ends after this many seconds without a request. requests_app.sessions'
# middleware moves its expiry (cookie and database row) forward again, at most every 1% of it.
SESSION_IDLE_TIMEOUT_SECONDS = env.int("SESSION_IDLE_TIMEOUT_SECONDS", default=8 * 3600)
if SESSION_IDLE_TIMEOUT_SECONDS < 60:
    raise ImproperlyConfigured("SESSION_IDLE_TIMEOUT_SECONDS must be at least 60.")
SESSION_COOKIE_AGE = SESSION_IDLE_TIMEOUT_SECONDS
# Only files served by the service itself: no inline script or style, no eval, no other origin.
# (Swagger UI's stylesheet embeds its icons as data: URIs.)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- cache and tasks ------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
# Without a broker, tasks run in-process right after the transaction commits (the embedded default).
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
# A failing task records its failure on the request; it must not turn the web request into a 500.
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# At-least-once delivery: a message is acknowledged only once its task has finished.
# Celery's Django fixup leaves the worker's connections open between tasks (it closes them after this
# many tasks); config/celery.py closes the ones that must not be reused, as Django does between requests.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
# Longer than any task or retry countdown, so Redis does not redeliver work that is still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

# Who starts the reclamation passes: `beat` (the entry below) or `cron` (the install in deploy/ runs
# `manage.py reclaim_leases` as a Kubernetes CronJob, and beat must not run a second schedule of them).
LEASEHOLD_RECLAIM_SCHEDULE = env.str("LEASEHOLD_RECLAIM_SCHEDULE", default="beat")
if LEASEHOLD_RECLAIM_SCHEDULE not in ("beat", "cron"):
    raise ImproperlyConfigured(f"LEASEHOLD_RECLAIM_SCHEDULE must be beat or cron, not {LEASEHOLD_RECLAIM_SCHEDULE!r}.")

# Every periodic job in one place. A crontab schedule is written as plain data, `{"crontab": {crontab's
# arguments}}`, turned into Celery's crontab by config/celery.py: loading the settings imports no Celery.
CELERY_BEAT_SCHEDULE = {
    # Notices are per day and grace is measured in days: a pass every 15 minutes keeps expiry
    # close to the hour without putting load on the API server.
    "reclaim-leases": {"task": "leases.tasks.reclaim_leases", "schedule": {"crontab": {"minute": "*/15"}}},
    # A namespace takes seconds to terminate: its lease, resource and request are marked reclaimed by
    # this follow-up within LEASEHOLD_RECLAIM_FOLLOW_SECONDS of it being gone, not at the next pass.
    "follow-reclaiming-leases": {
        "task": "leases.tasks.follow_reclaiming",
        "schedule": env.float("LEASEHOLD_RECLAIM_FOLLOW_SECONDS", default=20.0),
        "options": {"expires": env.float("LEASEHOLD_RECLAIM_FOLLOW_SECONDS", default=20.0)},
    },
    # Reminder and escalation delays are counted in hours: a pass every 15 minutes sends each notice
    # within a quarter of an hour of being due, and an idle pass is one indexed query.
    "nudge-waiting-approvals": {
        "task": "approvals.tasks.nudge_waiting_approvals",
        "schedule": {"crontab": {"minute": "*/15"}},
    },
    # A worker that died mid-apply is noticed within this interval (its database session is gone), and
    # a lost message (broker restart) within LEASEHOLD_PROVISION_STUCK_MINUTES plus this interval: with
    # the defaults, 30 s and 90 s, so that a request is provisioned again within two minutes. An idle
    # pass is two indexed queries. `expires`: a pass that waited longer than its interval is dropped,
    # the next one does the same work.
    "sweep-stuck-provisioning": {
        "task": "provisioning.tasks.sweep_stuck_requests",
        "schedule": env.float("LEASEHOLD_SWEEP_SECONDS", default=30.0),
        "options": {"expires": env.float("LEASEHOLD_SWEEP_SECONDS", default=30.0)},
    },
    # New mail is sent right after its transaction commits; this pass retries what the mail server refused
    # or could not be reached for (and mail whose sender died after the commit). Every five minutes a
    # reminder is late by at most that much once the server is back, a permanently refused mail costs the
    # server a few hundred attempts a day, and an idle pass is one indexed query.
    "deliver-pending-mail": {
        "task": "requests_app.tasks.deliver_pending_mail",
        "schedule": env.float("LEASEHOLD_MAIL_RETRY_SECONDS", default=300.0),
        "options": {"expires": env.float("LEASEHOLD_MAIL_RETRY_SECONDS", default=300.0)},
    },
    # Drift is repaired within five minutes; each pass reads every recorded object once, so a much
    # shorter interval would mostly add load on the API server.
    "reconcile-resources": {
        "task": "provisioning.tasks.reconcile_resources",
        "schedule": env.float("LEASEHOLD_RECONCILE_SECONDS", default=300.0),
        "options": {"expires": env.float("LEASEHOLD_RECONCILE_SECONDS", default=300.0)},
    },
    # A cluster that stops answering is marked down (its requests shown waiting, an alert after 5 minutes)
    # within this interval, and one that answers again resumes its work within it. Each run is one
    # readiness call and one node list per cluster, all clusters at once: cheap for the API servers.
    "check-clusters": {
        "task": "provisioning.tasks.check_clusters",
        "schedule": env.float("LEASEHOLD_CLUSTER_CHECK_SECONDS", default=30.0),
        "options": {"expires": env.float("LEASEHOLD_CLUSTER_CHECK_SECONDS", default=30.0)},
    },
}
if LEASEHOLD_RECLAIM_SCHEDULE == "cron":
    # The follow-up of reclaiming leases stays: it is not a pass, and keeps records close to the cluster.
    del CELERY_BEAT_SCHEDULE["reclaim-leases"]

# --- Kubernetes -----------------------------------------------------------------------------------
LEASEHOLD_CLUSTER = env.str("LEASEHOLD_CLUSTER", default="auto")
if LEASEHOLD_CLUSTER not in ("auto", "kubeconfig", "incluster", "local"):
    raise ImproperlyConfigured(
        f"LEASEHOLD_CLUSTER must be auto, kubeconfig, incluster or local, not {LEASEHOLD_CLUSTER!r}."
    )
# Where `make run` / `make test` write the local control plane's kubeconfig.
LEASEHOLD_LOCAL_KUBECONFIG = env.str("LEASEHOLD_LOCAL_KUBECONFIG", default=str(BASE_DIR / ".run" / "kubeconfig"))
# The namespace the service itself runs in: never touched by the reclaimer.
LEASEHOLD_SERVICE_NAMESPACE = env.str("LEASEHOLD_SERVICE_NAMESPACE", default="leasehold")
LEASEHOLD_FIELD_MANAGER = "leasehold"
LEASEHOLD_K8S_TIMEOUT = env.float("LEASEHOLD_K8S_TIMEOUT", default=15.0)
# At most this many API calls in flight at once from one task or pass, where the calls are independent
# (the objects inside a namespace, the namespaces of one reclamation pass).
LEASEHOLD_K8S_CONCURRENCY = env.int("LEASEHOLD_K8S_CONCURRENCY", default=8)
if LEASEHOLD_K8S_CONCURRENCY < 1:
    raise ImproperlyConfigured("LEASEHOLD_K8S_CONCURRENCY must be at least 1.")
# The clusters whose queues (`cluster.<name>`, provisioning/queues.py) a worker consumes besides Celery's
# default queue: `*`, every registered cluster (one registered later within
# LEASEHOLD_WORKER_QUEUE_REFRESH_SECONDS), or a comma-separated list of cluster names.
LEASEHOLD_WORKER_CLUSTERS = env.str("LEASEHOLD_WORKER_CLUSTERS", default="*")
if not all(
    part == "*" or re.fullmatch(r"[-a-zA-Z0-9_]+", part)
    for part in (p.strip() for p in LEASEHOLD_WORKER_CLUSTERS.split(","))
):
    raise ImproperlyConfigured(
        "LEASEHOLD_WORKER_CLUSTERS must be * or a comma-separated list of cluster names, "
        f"not {LEASEHOLD_WORKER_CLUSTERS!r}."
    )
LEASEHOLD_WORKER_QUEUE_REFRESH_SECONDS = env.float("LEASEHOLD_WORKER_QUEUE_REFRESH_SECONDS", default=30.0)
# How databases are made: `statefulset` (the official image; any cluster) or `cloudnativepg` (a CNPG Cluster).
LEASEHOLD_DATABASE_PROVIDER = env.str("LEASEHOLD_DATABASE_PROVIDER", default="statefulset")
if LEASEHOLD_DATABASE_PROVIDER not in ("statefulset", "cloudnativepg"):
    raise ImproperlyConfigured(
        f"LEASEHOLD_DATABASE_PROVIDER must be statefulset or cloudnativepg, not {LEASEHOLD_DATABASE_PROVIDER!r}."
    )
# The IngressClass for app hosts; empty: the cluster's default class.
LEASEHOLD_INGRESS_CLASS = env.str("LEASEHOLD_INGRESS_CLASS", default="")
# App hosts must be names under one of these domains (not a domain itself), and unique across teams.
# Empty: no app may have a host. Keep the service's own host out of them (it is refused anyway).
LEASEHOLD_INGRESS_DOMAINS = ingress_domains(env.list("LEASEHOLD_INGRESS_DOMAINS", default=["apps.example.org"]))
# The Pod Security Admission level every team namespace enforces (and audits and warns about), per
# environment: `restricted`, or e.g. `baseline,prod=restricted` (a bare level is the default).
LEASEHOLD_POD_SECURITY = pod_security_levels(env.str("LEASEHOLD_POD_SECURITY", default="restricted"))
# The version of those rules: `latest` (they follow the cluster's release) or pinned, e.g. `v1.30`.
LEASEHOLD_POD_SECURITY_VERSION = pod_security_version(env.str("LEASEHOLD_POD_SECURITY_VERSION", default="latest"))

# --- reliable provisioning (provisioning/) ----------------------------------------------------------
# Per API call: transient errors (429, 5xx, timeouts, resets) are retried this many times in-process,
# with full-jitter exponential backoff from LEASEHOLD_K8S_BACKOFF_SECONDS up to ..._MAX_SECONDS (a longer
# Retry-After goes to the task instead).
LEASEHOLD_K8S_RETRIES = env.int("LEASEHOLD_K8S_RETRIES", default=3)
LEASEHOLD_K8S_BACKOFF_SECONDS = env.float("LEASEHOLD_K8S_BACKOFF_SECONDS", default=0.5)
LEASEHOLD_K8S_BACKOFF_MAX_SECONDS = env.float("LEASEHOLD_K8S_BACKOFF_MAX_SECONDS", default=8.0)
# Per task: a run that still fails transiently is retried after an exponential, jittered delay (at
# least Retry-After), at most ..._MAX_SECONDS; after LEASEHOLD_MAX_DELIVERIES runs (retries, and
# redeliveries after a worker died) the request fails with the reason.
LEASEHOLD_RETRY_BACKOFF_SECONDS = env.float("LEASEHOLD_RETRY_BACKOFF_SECONDS", default=5.0)
LEASEHOLD_RETRY_BACKOFF_MAX_SECONDS = env.float("LEASEHOLD_RETRY_BACKOFF_MAX_SECONDS", default=300.0)
LEASEHOLD_MAX_DELIVERIES = env.int("LEASEHOLD_MAX_DELIVERIES", default=8)
# A worker holds a request for this long and renews the claim after every object; one that dies
# leaves a claim that runs out. Longer than the slowest single step (a call and its in-process retries).
LEASEHOLD_PROVISION_CLAIM_SECONDS = env.float("LEASEHOLD_PROVISION_CLAIM_SECONDS", default=120.0)
# A request approved or provisioning with no claim, no retry due and nothing enqueued for this long is
# enqueued again by the sweep (see CELERY_BEAT_SCHEDULE). Short, because a duplicate message costs
# nothing (the worker claims the request and re-reads its state) while a lost one strands the request.
# Retries are scheduled in the database (`retry_at`): the sweep also re-publishes a retry whose
# message was lost, so recovery never waits for Redis's visibility_timeout.
LEASEHOLD_PROVISION_STUCK_MINUTES = env.float("LEASEHOLD_PROVISION_STUCK_MINUTES", default=1.0)
LEASEHOLD_SWEEP_MAX_PER_RUN = env.int("LEASEHOLD_SWEEP_MAX_PER_RUN", default=200)
# Readiness: the namespace must be Active. With LEASEHOLD_WAIT_FOR_READY (clusters with nodes),
# Deployments and StatefulSets must also become available within LEASEHOLD_READY_TIMEOUT_SECONDS,
# checked every LEASEHOLD_READY_POLL_SECONDS without holding a worker; otherwise the request fails.
LEASEHOLD_WAIT_FOR_READY = env.bool("LEASEHOLD_WAIT_FOR_READY", default=False)
LEASEHOLD_READY_TIMEOUT_SECONDS = env.float("LEASEHOLD_READY_TIMEOUT_SECONDS", default=600.0)
LEASEHOLD_READY_POLL_SECONDS = env.float("LEASEHOLD_READY_POLL_SECONDS", default=10.0)
# Redis redelivers an unacknowledged message after visibility_timeout, also one that is still running
# or waiting for its countdown: it must be longer than any task plus any retry delay.
if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] <= CELERY_TASK_TIME_LIMIT + max(
    LEASEHOLD_RETRY_BACKOFF_MAX_SECONDS, LEASEHOLD_READY_POLL_SECONDS
):
    raise ImproperlyConfigured(
        "CELERY_BROKER_TRANSPORT_OPTIONS visibility_timeout must exceed CELERY_TASK_TIME_LIMIT plus "
        "LEASEHOLD_RETRY_BACKOFF_MAX_SECONDS (and LEASEHOLD_READY_POLL_SECONDS)."
    )

# --- approvals ------------------------------------------------------------------------------------
APPROVAL_POLICY_FILE = env.str("APPROVAL_POLICY_FILE", default="")
# A pending step that waited longer than this reminds its approvers (and again every this many hours);
# after APPROVAL_ESCALATION_HOURS a step whose policy names `escalate_to` is escalated to that group.
APPROVAL_REMINDER_HOURS = env.int("APPROVAL_REMINDER_HOURS", default=24)
APPROVAL_ESCALATION_HOURS = env.int("APPROVAL_ESCALATION_HOURS", default=48)
if APPROVAL_REMINDER_HOURS < 1 or APPROVAL_ESCALATION_HOURS < 1:
    raise ImproperlyConfigured("APPROVAL_REMINDER_HOURS and APPROVAL_ESCALATION_HOURS must be at least 1.")
# The longest delegation, in days with both ends included; a delegation may also be planned at most
# this many days ahead.
LEASEHOLD_DELEGATION_MAX_DAYS = env.int("LEASEHOLD_DELEGATION_MAX_DAYS", default=90)
if not 1 <= LEASEHOLD_DELEGATION_MAX_DAYS <= 3660:
    raise ImproperlyConfigured("LEASEHOLD_DELEGATION_MAX_DAYS must be between 1 and 3660.")
# The address people use to reach the web pages: links in notification emails start with it.
LEASEHOLD_BASE_URL = env.str("LEASEHOLD_BASE_URL", default="http://localhost:8000").rstrip("/")

# --- leases ---------------------------------------------------------------------------------------
LEASE_DEFAULT_DAYS = env.int("LEASE_DEFAULT_DAYS", default=14)
LEASE_MAX_DAYS = env.int("LEASE_MAX_DAYS", default=90)
LEASE_MAX_TOTAL_DAYS = env.int("LEASE_MAX_TOTAL_DAYS", default=180)
LEASE_GRACE_DAYS = env.int("LEASE_GRACE_DAYS", default=3)
LEASE_NOTICE_DAYS = [int(d) for d in env.list("LEASE_NOTICE_DAYS", default=["7", "1"])]
RECLAIM_MAX_PER_RUN = env.int("RECLAIM_MAX_PER_RUN", default=50)
# How long one step of a pass (quarantine, backup and deletion of one lease) may hold its lease before
# another pass may take it over (the process holding it died).
LEASEHOLD_LEASE_CLAIM_SECONDS = env.float("LEASEHOLD_LEASE_CLAIM_SECONDS", default=300.0)
# Leases whose objects are going away (a namespace terminating, a backup running) are followed up this
# often, so that records follow the cluster within a minute; each check is one read per lease.
LEASEHOLD_RECLAIM_FOLLOW_SECONDS = env.float("LEASEHOLD_RECLAIM_FOLLOW_SECONDS", default=20.0)
LEASEHOLD_RECLAIM_FOLLOW_MAX = env.int("LEASEHOLD_RECLAIM_FOLLOW_MAX", default=500)
# Each pass checks this many owners (those checked longest ago) for still being in their resources'
# teams, plus every deactivated owner: with LDAP, one directory read per owner checked.
LEASEHOLD_HANDOVER_BATCH = env.int("LEASEHOLD_HANDOVER_BATCH", default=50)
# Backups before deletion: pg_dump Jobs run in this namespace and write to this volume claim in it.
# The namespace carries the label `leasehold.io/backups: "true"`, which team namespaces' network
# policy admits, so the Job reaches the databases.
LEASEHOLD_BACKUP_NAMESPACE = env.str("LEASEHOLD_BACKUP_NAMESPACE", default="leasehold-backups")
LEASEHOLD_BACKUP_PVC = env.str("LEASEHOLD_BACKUP_PVC", default="leasehold-backups")
# Who hears about failed backups (comma list of addresses); empty: the Django admins (staff with email).
LEASEHOLD_ALERT_EMAILS = env.list("LEASEHOLD_ALERT_EMAILS", default=[])
if LEASE_DEFAULT_DAYS < 1 or LEASE_DEFAULT_DAYS > LEASE_MAX_DAYS:
    raise ImproperlyConfigured("LEASE_DEFAULT_DAYS must be between 1 and LEASE_MAX_DAYS.")

# --- email ----------------------------------------------------------------------------------------
# EMAIL_URL or Django's EMAIL_* (see config/email.py); DEFAULT_FROM_EMAIL and EMAIL_TIMEOUT too.
globals().update(email_settings())
# Mail goes through the outbox (requests_app.OutgoingMail): delivered after commit, and what the mail
# backend did not accept is retried by the periodic delivery (CELERY_BEAT_SCHEDULE) and by every
# reclamation pass, at most this many mails per run.
LEASEHOLD_MAIL_MAX_PER_RUN = env.int("LEASEHOLD_MAIL_MAX_PER_RUN", default=200)

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an unauthenticated call then gets 401 with `WWW-Authenticate: Token`.
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's own three, with a JSON parser that answers a too deeply nested body with a 400.
    "DEFAULT_PARSER_CLASSES": [
        "requests_app.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "requests_app.api.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "requests_app.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"auth-token": LEASEHOLD_TOKEN_THROTTLE_RATE},
    # Throttles count per client address; see LEASEHOLD_PROXY_COUNT (DRF's default trusts any X-Forwarded-For).
    "NUM_PROXIES": LEASEHOLD_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Leasehold API",
    "DESCRIPTION": "Self-service namespaces, databases and apps on the internal Kubernetes platform.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from drf-spectacular-sidecar's static files, not from a CDN; no online validator badge.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RequestStateEnum": "requests_app.models.RequestState",
        "ResourceStateEnum": "requests_app.models.ResourceState",
        "StepStateEnum": "approvals.models.StepState",
        "LeaseStateEnum": "leases.models.LeaseState",
        "EnvironmentEnum": "requests_app.models.Environment",
    },
}

# --- logs (README "Metrics and alerts") ---------------------------------------------------------------
# `plain` (for a terminal: `make run`) or `json` (one object per line, for a log pipeline: the deploy
# manifests set it). Every line carries request_id (the ingress's X-Request-ID, else one of ours; a
# Celery task's id in the worker), actor, resource_id and resource_request_id where they are known
# (requests_app/logs.py); JSON has them as fields, with time, level, logger and message.
LEASEHOLD_LOG_FORMAT = env.str("LEASEHOLD_LOG_FORMAT", default="plain")
if LEASEHOLD_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LEASEHOLD_LOG_FORMAT must be plain or json, not {LEASEHOLD_LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "requests_app.logs.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s "
            "%(request_id)s %(actor)s %(resource_id)s %(resource_request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LEASEHOLD_LOG_FORMAT, "filters": ["context"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django_auth_ldap": {"level": env.str("LDAP_LOG_LEVEL", default="WARNING")},
        # INFO would log every login; failures and lockouts are warnings.
        "axes": {"level": env.str("AXES_LOG_LEVEL", default="WARNING")},
    },
}

# --- metrics (README "Metrics and alerts") ----------------------------------------------------------
# `GET /metrics` is served on this port only: gunicorn listens on it besides the web port, the Celery
# worker's main process serves its own there, and the Ingress never routes to it. 0: the worker serves
# none. With the development server, /metrics answers on the web port only with DEBUG, from loopback.
LEASEHOLD_METRICS_PORT = env.int("LEASEHOLD_METRICS_PORT", default=9100)
# Where the worker's metrics server listens: every address of the pod, which is what Prometheus scrapes
# (the NetworkPolicy decides who may reach it); 127.0.0.1 on a shared machine.
LEASEHOLD_METRICS_ADDRESS = env.str("LEASEHOLD_METRICS_ADDRESS", default="0.0.0.0")  # noqa: S104  # nosec B104
# Several processes (gunicorn workers, Celery's prefork children) share their counters through files
# in PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode), an emptyDir in the pod. Read by
# prometheus-client itself from the environment; it must be an existing, writable directory.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR} is not a directory.")

SILENCED_SYSTEM_CHECKS: list[str] = [
    # axes' middleware only turns a lockout into its own plain 429 page; our login form, the admin's and
    # the token endpoint tell a locked-out person themselves (accounts/), so it is not installed.
    "axes.W002",
    # HSTS preloading commits the whole registrable domain to HTTPS in every browser, for months: a choice
    # for whoever owns that domain (SECURE_HSTS_PRELOAD=true), not a default of one service in it.
    "security.W021",
]
