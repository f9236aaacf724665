"""Remove DRF's `authtoken` tokens, which were stored as plain text.

`rest_framework.authtoken` is no longer installed, so Django would leave its table behind with every
key readable. Its table and its migration records go; clients log in again for a hashed, expiring
token (README, "Logins and tokens").
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql=[
                "DROP TABLE IF EXISTS authtoken_token",
                "DELETE FROM django_migrations WHERE app = 'authtoken'",
            ],
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
