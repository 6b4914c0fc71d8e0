"""Webhook delivery: signing, the SSRF guard, endpoints, sending and scheduling."""
