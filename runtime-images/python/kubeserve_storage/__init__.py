"""Kubeserve's storage initializer: fetch a model from a storageUri into the model directory.

Run as the init container of every model pod (`kubeserve-storage <uri> [/mnt/models]`, or `<uri>
<dest>` pairs for storageUris). The operator passes configuration only through the environment, by
reference to the Secrets and annotations of the component's ServiceAccount or to a storage-config
Secret key, so the same Secrets that work with KServe work here.

Environment contract (the names KServe's storage initializer reads):

s3://
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   credentials (AWS_SESSION_TOKEN too))
    AWS_ENDPOINT_URL      full endpoint URL of an S3-compatible store (MinIO, Ceph, ...)
    S3_ENDPOINT           host[:port] of that endpoint, used when AWS_ENDPOINT_URL is unset
                          (ServiceAccount annotation serving.kserve.io/s3-endpoint)
    S3_USE_HTTPS          1/0, the scheme for S3_ENDPOINT; default 1 (s3-usehttps)
    AWS_DEFAULT_REGION    region, AWS_REGION as a fallback (s3-region)
    S3_VERIFY_SSL         1/0, verify the endpoint's TLS certificate; default 1 (s3-verifyssl)
    AWS_CA_BUNDLE         CA bundle to verify it against (s3-cabundle)
    S3_USER_VIRTUAL_BUCKET  1/0, virtual-host-style bucket addressing; default 1 on AWS, 0 with a
                          custom endpoint (s3-usevirtualbucket; KServe's spelling)
    awsAnonymousCredential  true to read a public bucket unsigned (s3-useanoncredential)
gs://
    GOOGLE_APPLICATION_CREDENTIALS  path of a service-account key (the operator mounts the
                          ServiceAccount's gcloud-application-credentials.json); anonymous without it
    STORAGE_EMULATOR_HOST  URL of a GCS emulator, read by google-cloud-storage
https:// and http://
    SSL_CERT_FILE         CA bundle to verify the server against, instead of the built-in roots
    HTTPS_VERIFY_SSL      1/0, verify the server's TLS certificate; default 1
storage-config entries (KServe's `storage` spec)
    STORAGE_CONFIG        JSON of one storage-config Secret key, by secretKeyRef: {"type": "s3",
                          "bucket", "endpoint_url", "region", "access_key_id", "secret_access_key",
                          "ca_bundle", "verify_ssl", "anonymous"}; its settings replace the s3
                          variables above (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...). Type s3 only.
    STORAGE_OVERRIDE_CONFIG  JSON of storage.parameters, laid over STORAGE_CONFIG
    A URI <scheme-placeholder>://<path> is fetched as s3://<bucket>/<path>, bucket from the entry.
hf://<org>/<repo>[@<revision>]  (KServe's <org>/<repo>:<revision> too; default: the main branch)
    HF_TOKEN              token for a private or gated repository; anonymous without it
    HF_ENDPOINT           URL of a Hub mirror, read by huggingface_hub; default the public Hub

Boolean values are 1/0, true/false, yes/no or on/off; anything else is an error, not a guess.
"""

from kubeserve_storage.errors import StorageError
from kubeserve_storage.fetch import fetch

__all__ = ["StorageError", "fetch"]
