"""The Files and Batches APIs' domain: files kept for a key (files.py), and batch jobs that run
their requests at low priority, through the gateway, resuming after a restart (jobs.py)."""
