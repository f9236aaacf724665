"""Signals of the provisioning layer."""

from django.dispatch import Signal

# The health check saw a cluster answer again after it did not (sent after the change is saved):
# `sender` is the Cluster model, `cluster` the row. provisioning.tasks resumes its waiting requests.
cluster_recovered = Signal()
