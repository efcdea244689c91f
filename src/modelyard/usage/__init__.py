"""What callers use: tokens, requests, images and loads per model and key, by the hour, and the
quotas on loads."""
