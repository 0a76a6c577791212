# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The shared connection options of every module, lookup and inventory plugin.
    DOCUMENTATION = r"""
options:
  registry:
    description:
      - The registry, as C(host[:port]) or a URL.
      - Without a scheme, HTTPS is used. Plain HTTP only when the URL says C(http://).
      - A URL path is kept as a base path for every request (for registries served under a prefix).
      - C(docker.io) (and its aliases) means Docker Hub.
    type: str
    required: true
  username:
    description:
      - Username for Basic authentication and for the Bearer token flow.
      - When neither O(username) nor O(token) is given, credentials come from O(docker_config).
    type: str
  password:
    description:
      - Password (or access token used as a password) for O(username).
    type: str
  token:
    description:
      - A pre-issued bearer token, sent as is.
    type: str
  docker_config:
    description:
      - Path of a Docker C(config.json) (C(auths) with C(auth), C(identitytoken), C(registrytoken);
        C(credsStore) and C(credHelpers) through C(docker-credential-<name> get)).
      - Defaults to C($DOCKER_CONFIG/config.json), else C(~/.docker/config.json). A missing file means anonymous access.
    type: path
  validate_certs:
    description:
      - Verify the TLS certificates of the registry and of the hosts it sends the client to (its token server,
        blob storage). Turning this off prints a warning.
      - Certificates are verified against the system's trusted roots (OpenSSL's default locations, which the
        environment variables E(SSL_CERT_FILE) and E(SSL_CERT_DIR) move, as for curl), plus O(ca_path), plus the
        Docker C(certs.d) directory of each host (see O(client_cert)). The C(certifi) bundle is used only on a
        machine whose OpenSSL has no trusted roots at all.
    type: bool
    default: true
  ca_path:
    description:
      - A CA bundle (PEM, or a directory of hashed certificates) I(added) to the system's trusted roots, for the
        registry and every host it sends the client to (a token server, or blob storage on a publicly trusted
        certificate, keeps verifying).
      - When not set, the environment variable E(REGOPS_REGISTRY_CA_PATH) is read (on the host running the module, for
        modules), so a private CA can be configured once for modules, roles, lookups and the inventory.
    type: path
  client_cert:
    description:
      - Client certificate (PEM) for mutual TLS. It is presented only to the registry's own origin (scheme, host and
        port), never to a redirect target or a token server on another host.
      - Without it, what Docker users already have is used, as the Docker daemon reads it, on the host running the
        module, in C(/etc/docker/certs.d/<host[:port]>/). Every C(*.crt) there is a CA trusted for that host, and a
        C(client.cert) with its C(client.key) (any C(<name>.cert) + C(<name>.key) pair) is presented to that host
        only. The directory is C(<host>:<port>), or C(<host>) for port 443.
      - The environment variable E(REGOPS_REGISTRY_CERTS_DIR) replaces C(/etc/docker/certs.d) (a non-root user,
        rootless Docker's C(~/.config/docker/certs.d), tests).
    type: path
  client_key:
    description:
      - Key of O(client_cert), when not in the same file.
    type: path
  timeout:
    description:
      - Per-request timeout in seconds (connect and read).
    type: float
    default: 60
  retries:
    description:
      - How many times a request that is safe to repeat is retried after a connection error,
        HTTP 429 (honouring C(Retry-After)), 500 (reads only), 502, 503 or 504, with exponential backoff.
    type: int
    default: 3
requirements:
  - requests >= 2.25 (on the host that runs the module, usually the controller)
notes:
  - Credentials are never logged and never returned; C(Authorization) is not forwarded to another host on a redirect.
"""

    # For modules that read from a second registry (copies, promotions).
    SOURCE = r"""
options:
  source_connection:
    description:
      - Connection options for a source on another registry, the same options as the module's own.
      - Unset ones default to the module's own O(validate_certs), O(ca_path), O(timeout), O(retries) and
        O(docker_config) (a Docker C(config.json) holds credentials per host, so the source host gets only its own
        entry). Credentials (O(username), O(password), O(token)) and the client certificate (O(client_cert),
        O(client_key)) are never taken over from the target registry.
    type: dict
    suboptions:
      registry:
        description:
          - URL of the source registry, to give its scheme (for example C(http://127.0.0.1:5001)).
          - When not set, the host named in the source reference, over HTTPS.
        type: str
      username:
        description: Username on the source registry.
        type: str
      password:
        description: Password on the source registry.
        type: str
      token:
        description: Pre-issued bearer token for the source registry.
        type: str
      docker_config:
        description:
          - Docker C(config.json) to find the source registry's credentials in, when no O(source_connection.username)
            or O(source_connection.token) is given.
          - When not set, the module's own O(docker_config).
        type: path
      validate_certs:
        description: Verify the source registry's TLS certificate. When not set, the module's own O(validate_certs).
        type: bool
      ca_path:
        description: CA bundle for the source registry. When not set, the module's own O(ca_path).
        type: path
      client_cert:
        description: Client certificate (PEM) for mutual TLS with the source registry (never the target's).
        type: path
      client_key:
        description: Key of O(source_connection.client_cert), when not in the same file.
        type: path
      timeout:
        description: Per-request timeout in seconds on the source registry. When not set, the module's own O(timeout).
        type: float
      retries:
        description: Retries of safe requests on the source registry. When not set, the module's own O(retries).
        type: int
"""

    # For lookup and inventory plugins: the same options, also read from variables and the environment.
    PLUGINS = r"""
options:
  registry:
    vars:
      - name: regops_registry
  username:
    env:
      - name: REGOPS_REGISTRY_USERNAME
    vars:
      - name: regops_registry_username
  password:
    env:
      - name: REGOPS_REGISTRY_PASSWORD
    vars:
      - name: regops_registry_password
  token:
    env:
      - name: REGOPS_REGISTRY_TOKEN
    vars:
      - name: regops_registry_token
  validate_certs:
    vars:
      - name: regops_registry_validate_certs
  ca_path:
    env:
      - name: REGOPS_REGISTRY_CA_PATH
    vars:
      - name: regops_registry_ca_path
"""
