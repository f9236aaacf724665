"""`manage.py seed_demo`: local demo accounts and groups for `make run` (never for production)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from requests_app.models import AllowedRegistry, AppTemplate

DEMO_PASSWORD = "leasehold"
# The same people and groups as the dev LDAP directory (platform/ldap/dev-directory.ldif).
DEMO_USERS: dict[str, tuple[str, list[str]]] = {
    "dana": ("Dana Developer", ["team-atlas"]),
    "tom": ("Tom Teammate", ["team-atlas"]),
    "lena": ("Lena Lead", ["team-atlas", "team-atlas-leads"]),
    "frank": ("Frank Platform", ["platform-approvers"]),
    "paula": ("Paula Platform", ["platform-approvers"]),
    "sam": ("Sam Security", ["security-approvers", "team-zephyr"]),
    "olga": ("Olga Outsider", ["team-zephyr"]),
    "ada": ("Ada Admin", ["leasehold-admins"]),
}


class Command(BaseCommand):
    help = "Create the local demo accounts (password 'leasehold') and their groups. Idempotent."

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("seed_demo makes accounts with a known password; it runs only with DEBUG=true.")
        User = get_user_model()
        with transaction.atomic():
            for username, (full_name, groups) in DEMO_USERS.items():
                first, last = full_name.split(" ", 1)
                user, created = User.objects.get_or_create(
                    username=username,
                    defaults={"first_name": first, "last_name": last, "email": f"{username}@example.org"},
                )
                if created:
                    user.set_password(DEMO_PASSWORD)
                is_admin = settings.LDAP_ADMIN_GROUP in groups
                user.is_staff = user.is_superuser = is_admin
                user.save()
                for name in groups:
                    group, _ = Group.objects.get_or_create(name=name)
                    user.groups.add(group)
            AllowedRegistry.objects.get_or_create(
                prefix="docker.io/nginxinc/", defaults={"description": "demo: NGINX's unprivileged images"}
            )
            AppTemplate.objects.get_or_create(
                slug="static-site",
                defaults={
                    "name": "Static site",
                    "description": "NGINX serving files, running as a non-root user (demo template).",
                    "image_repository": "docker.io/nginxinc/nginx-unprivileged",
                    "default_tag": "1.27-alpine",
                    "container_port": 8080,
                    "health_path": "/",
                    "default_env": {},
                    "accepts_database": False,
                },
            )
            # The README's walk binds an app to a database: a template that takes one. The same
            # unprivileged image (it meets Pod Security `restricted`); the bound database's PGHOST …
            # PGPASSWORD reach its container from the database's Secret, as they would reach a real app.
            AppTemplate.objects.get_or_create(
                slug="web-with-database",
                defaults={
                    "name": "Web app with a database",
                    "description": (
                        "NGINX as a stand-in web app that takes a database: bind one, and its connection "
                        "(PGHOST … PGPASSWORD, from the database's Secret) reaches the container (demo template)."
                    ),
                    "image_repository": "docker.io/nginxinc/nginx-unprivileged",
                    "default_tag": "1.27-alpine",
                    "container_port": 8080,
                    "health_path": "/",
                    "default_env": {},
                    "accepts_database": True,
                },
            )
        self.stdout.write(f"Demo accounts ready (password '{DEMO_PASSWORD}'): {', '.join(DEMO_USERS)}")
