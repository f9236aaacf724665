"""Reads of the accounts app: where an account comes from (the directory or the local database).

The answer is needed below accounts too (the leases hand-over, approvals' directory checks), so it lives
in the bottom layer, `requests_app.directory`; this module names it for the accounts app.
"""

from __future__ import annotations

from requests_app.directory import directory_in_use, is_directory_account

__all__ = ["directory_in_use", "is_directory_account"]
