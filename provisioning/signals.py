"""Signals of the provisioning app that other code connects to (in an AppConfig.ready())."""

from django.dispatch import Signal

# Sent once when the health check (services.health.clusters_check) finds a cluster that was down
# answering again, after the transaction that recorded it committed. Args: cluster (the Cluster row).
# The provisioning sweep connects here to resume the requests that waited on that cluster.
cluster_recovered = Signal()
