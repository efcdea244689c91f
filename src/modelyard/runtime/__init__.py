"""Running models: deployments -> instances (engine processes), queues, load rules, restarts."""
