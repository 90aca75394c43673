"""The one error the storage initializer reports, in words a person can act on."""


class StorageError(Exception):
    """A download that cannot succeed; the message says what went wrong and what to fix.

    The message leaves the URI out: the CLI names the URI once when it prints the error as the
    init container's last log line, so the pod's status shows why the model never arrived.
    """
