"""The shopper client: the pure shopping decisions, the HTTP shopper, and concurrent runs."""
