"""The no-op job the RQ peer benchmark enqueues (workers import it by name)."""


def noop():
    return None
