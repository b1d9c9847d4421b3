// The configuration schema: one source for validation, defaults and the commented sample config.
import { Type, type Static } from "@sinclair/typebox";

const Strict = { additionalProperties: false } as const;

export const ConfigSchema = Type.Object(
  {
    server_name: Type.String({ minLength: 1, default: "localhost", description: "The domain part of user IDs and room aliases. Cannot change after the first start." }),
    bind: Type.String({ pattern: "^(\\[[0-9a-fA-F:.]+\\]|[^:\\[\\]]+):[0-9]{1,5}$", default: "127.0.0.1:8008", description: "host:port the client and federation APIs listen on." }),
    data_dir: Type.String({ minLength: 1, default: "./data", description: "Folder for the database and the signing key; created on first start." }),
    database: Type.Object(
      {
        driver: Type.Union([Type.Literal("better-sqlite3"), Type.Literal("bun-sqlite"), Type.Literal("postgres")], {
          default: "better-sqlite3",
          description: "better-sqlite3 or bun-sqlite (SQLite, embedded), or postgres (needs url).",
        }),
        path: Type.Optional(Type.String({ minLength: 1, description: "SQLite: the database file; defaults to <data_dir>/portier.db. ':memory:' for a throwaway database." })),
        url: Type.Optional(Type.String({ minLength: 1, description: "PostgreSQL: postgres://user:password@host:port/database (the database must use collation C)." })),
        pool_size: Type.Integer({ minimum: 2, maximum: 1000, default: 10, description: "PostgreSQL: connections in the pool." }),
        wal_preallocate_mb: Type.Integer({
          minimum: 0,
          maximum: 64,
          default: 48,
          description: "SQLite: the write-ahead log is filled to this size at start, so that commits overwrite it in place instead of growing it (each sync of a growing file also commits its size: about twice as slow). 0: off.",
        }),
      },
      { ...Strict, default: {} },
    ),
    signing_key_path: Type.Optional(Type.String({ minLength: 1, description: "Signing key file (Synapse's format); defaults to <data_dir>/signing.key." })),
    key_valid_for_ms: Type.Integer({ minimum: 60_000, default: 7 * 24 * 3600 * 1000, description: "How long other servers may cache our signing key (valid_until_ts = now + this)." }),
    old_signing_keys: Type.Record(Type.String({ pattern: "^ed25519:[a-zA-Z0-9_]+$" }), Type.Object({ key: Type.String(), expired_ts: Type.Integer() }, Strict), {
      default: {},
      description: "Keys this server used to sign with: key id -> {key: unpadded base64 public key, expired_ts}.",
    }),
    max_request_body_bytes: Type.Integer({ minimum: 1024, default: 10 * 1024 * 1024, description: "Larger request bodies are refused with 413 M_TOO_LARGE." }),
    public_baseurl: Type.Optional(Type.String({ description: "The URL clients reach this server at; used for /.well-known/matrix/client." })),
    well_known: Type.Object(
      {
        server: Type.Optional(Type.String({ description: "Served as m.server in /.well-known/matrix/server (e.g. matrix.example.org:443)." })),
        client: Type.Optional(Type.String({ description: "Served as m.homeserver.base_url in /.well-known/matrix/client." })),
      },
      { ...Strict, default: {} },
    ),
    registration: Type.Object(
      {
        enabled: Type.Boolean({ default: false, description: "Let anyone register an account through /register." }),
        allow_guest_access: Type.Boolean({
          default: false,
          description: "Let anyone register a guest account (/register?kind=guest), whatever `enabled` says: guests may read and join rooms whose guest access is can_join, and use little else.",
        }),
        shared_secret: Type.Optional(Type.String({ minLength: 1, description: "Secret for admin registration at /_synapse/admin/v1/register." })),
        recaptcha: Type.Optional(Type.Object(
          {
            public_key: Type.String({ minLength: 1, description: "The site key, given to clients in the m.login.recaptcha stage's params." }),
            private_key: Type.String({ minLength: 1, description: "The secret key, sent with each response token to siteverify_api." }),
            siteverify_api: Type.String({ minLength: 1, default: "https://www.recaptcha.net/recaptcha/api/siteverify", description: "Where response tokens are verified (Google's siteverify API)." }),
            required: Type.Boolean({ default: true, description: "Every registration must pass the captcha (m.login.recaptcha heads each flow). Off: the stage is accepted but not asked for (as Synapse without enable_registration_captcha)." }),
            verify_tls: Type.Boolean({ default: true, description: "Verify siteverify_api's TLS certificate. Leave on outside of tests." }),
          },
          { ...Strict, description: "reCAPTCHA for registration (the m.login.recaptcha stage); unset: no captcha." },
        )),
      },
      { ...Strict, default: {} },
    ),
    email: Type.Optional(Type.Object(
      {
        smtp_host: Type.String({ minLength: 1, description: "The SMTP server validation emails are sent through." }),
        smtp_port: Type.Integer({ minimum: 1, maximum: 65535, default: 25 }),
        smtp_tls: Type.Union([Type.Literal("none"), Type.Literal("starttls"), Type.Literal("implicit")], { default: "none", description: "none: plain SMTP (a local mail server); starttls: upgrade to TLS first (refused when the server cannot); implicit: TLS from the start (port 465)." }),
        smtp_user: Type.Optional(Type.String({ minLength: 1, description: "Log in to the SMTP server (AUTH PLAIN) as this user." })),
        smtp_pass: Type.Optional(Type.String({ description: "The password of smtp_user." })),
        verify_tls: Type.Boolean({ default: true, description: "Verify the SMTP server's TLS certificate (starttls, implicit)." }),
        notif_from: Type.Optional(Type.String({ minLength: 1, description: "The From: of the emails, e.g. \"Example <noreply@example.org>\". Default: Portier <noreply@server_name>." })),
      },
      { ...Strict, description: "Send emails to validate addresses (registration with an email address, /account/3pid/email/requestToken); unset: the server validates none." },
    )),
    cas: Type.Optional(Type.Object(
      {
        server_url: Type.String({ minLength: 1, description: "The CAS server's base URL (e.g. https://cas.example.org/cas): users are sent to its /login, tickets checked at its /proxyValidate." }),
        service_url: Type.Optional(Type.String({ minLength: 1, description: "The URL the CAS server sends users back to (this server's client API, without /_matrix). Default: public_baseurl, else the address the request came to." })),
        displayname_attribute: Type.Optional(Type.String({ minLength: 1, description: "The CAS attribute that gives a new user's display name (default: the CAS user name)." })),
        required_attributes: Type.Record(Type.String(), Type.Union([Type.String(), Type.Null()]), { default: {}, description: "CAS attributes a user must have to log in: name -> value (null: any value)." }),
        verify_tls: Type.Boolean({ default: true, description: "Verify the CAS server's TLS certificate. Leave on outside of tests." }),
      },
      { ...Strict, description: "Single sign-on through a CAS server (m.login.sso, m.login.cas); unset: no SSO." },
    )),
    knocks: Type.Object(
      {
        expire_after_ms: Type.Optional(Type.Integer({ minimum: 60_000, description: "When set, knocks older than this are denied (the knocker is kicked) by a background job." })),
        expire_reason: Type.String({ default: "Your request to join has expired", description: "The reason given with knocks denied by expiry." }),
        auto_join_on_invite: Type.Boolean({ default: false, description: "Join a local knocker at once when they are invited (their knock was accepted)." }),
        notify_remote_rejection: Type.Boolean({
          default: false,
          description: "Also send the kick that rejects a knock to the knocker's server, so that the knocker learns the answer (servers that do not understand it ignore it).",
        }),
      },
      { ...Strict, default: {} },
    ),
    policy_server: Type.Object(
      {
        enabled: Type.Boolean({
          default: false,
          description: "Act as a policy server (spec v1.18): sign events, at /_matrix/policy/v1/sign, for rooms that name this server in m.room.policy, refusing what the spam policies refuse.",
        }),
        signing_key_path: Type.Optional(Type.String({ minLength: 1, description: "The policy key file (Synapse's key-file format), created on first start. Default: data_dir/policy_server.key. A key of its own, not the server's signing key." })),
      },
      { ...Strict, default: {} },
    ),
    federation: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: "Talk to other homeservers (the Server-Server API). When false, federation routes answer 403 and nothing is sent out." }),
        bind: Type.Optional(Type.String({
          pattern: "^(\\[[0-9a-fA-F:.]+\\]|[^:\\[\\]]+):[0-9]{1,5}$",
          description: "host:port of a listener for federation only (as Synapse's 8448). When unset, federation is served on `bind` beside the client API.",
        })),
        tls_certificate_path: Type.Optional(Type.String({ minLength: 1, description: "PEM certificate chain for the federation listener (with tls_private_key_path). Other servers reach a server name over TLS only." })),
        tls_private_key_path: Type.Optional(Type.String({ minLength: 1, description: "PEM private key of tls_certificate_path." })),
        verify_tls: Type.Boolean({ default: true, description: "Verify other servers' TLS certificates (outbound). Leave on outside of tests." }),
        tls_trusted_ca_path: Type.Optional(Type.String({ minLength: 1, description: "Extra PEM CA certificates trusted for outbound federation (besides the system's)." })),
        tls_skip_verify_servers: Type.Array(Type.String({ minLength: 1 }), { default: [], description: "Server names whose TLS certificate is not verified (local test peers only)." }),
        plain_http_servers: Type.Array(Type.String({ minLength: 1 }), { default: [], description: "Server names reached over plain HTTP instead of TLS (local test peers only)." }),
        trusted_key_servers: Type.Array(
          Type.Object(
            {
              server_name: Type.String({ minLength: 1 }),
              verify_keys: Type.Optional(Type.Record(Type.String(), Type.String(), { description: "key id -> unpadded base64 public key; when given, the notary's answers must be signed by one of these." })),
            },
            Strict,
          ),
          { default: [], description: "Notaries asked for a server's keys when that server cannot be reached directly." },
        ),
        request_timeout_ms: Type.Integer({ minimum: 1000, maximum: 600_000, default: 30_000, description: "How long an outbound federation request may take." }),
      },
      { ...Strict, default: {} },
    ),
    media: Type.Object(
      {
        max_upload_size: Type.Integer({ minimum: 1, default: 50 * 1024 * 1024, description: "Largest upload in bytes (Synapse's 50M); larger ones are refused with 413 M_TOO_LARGE, and larger remote media is not fetched." }),
        max_image_pixels: Type.Integer({ minimum: 1, default: 32_000_000, description: "Images with more pixels than this are not thumbnailed (413 M_TOO_LARGE)." }),
        max_pending_uploads: Type.Integer({ minimum: 1, default: 5, description: "How many ids made by POST /_matrix/media/v1/create a user may hold without content at once." }),
        unused_expiration_ms: Type.Integer({ minimum: 60_000, default: 24 * 3600 * 1000, description: "How long an id made by POST /create waits for its content (the spec recommends 24 hours)." }),
        freeze_unauthenticated: Type.Boolean({
          default: false,
          description: "Freeze the deprecated unauthenticated /_matrix/media/v3/download and /thumbnail endpoints: they answer 404 M_NOT_FOUND, and media is served only through the authenticated /_matrix/client/v1/media endpoints.",
        }),
        url_preview_enabled: Type.Boolean({ default: false, description: "Serve URL previews (/media/preview_url). The server then fetches URLs its users post, never on loopback, private, link-local or multicast addresses." }),
        url_preview_ip_range_whitelist: Type.Array(Type.String(), {
          default: [],
          description: "Address ranges (CIDR, e.g. 10.0.0.0/8) that URL previews may fetch although they are not public: an intranet the server's users link to. Synapse's key of the same name.",
        }),
        url_preview_verify_tls: Type.Boolean({ default: true, description: "Verify the TLS certificates of https pages URL previews fetch. Leave on outside of tests." }),
        url_preview_max_bytes: Type.Integer({ minimum: 1024, default: 10 * 1024 * 1024, description: "Largest page or image a URL preview fetches." }),
        url_preview_timeout_ms: Type.Integer({ minimum: 100, maximum: 120_000, default: 10_000, description: "How long fetching a URL for a preview may take." }),
      },
      { ...Strict, default: {} },
    ),
    push: Type.Object(
      {
        verify_tls: Type.Boolean({ default: true, description: "Verify push gateways' TLS certificates when pushers send notifications. Leave on outside of tests." }),
        request_timeout_ms: Type.Integer({ minimum: 1000, maximum: 120_000, default: 20_000, description: "How long one request to a push gateway may take before it is retried." }),
      },
      { ...Strict, default: {} },
    ),
    identity: Type.Object(
      {
        verify_tls: Type.Boolean({ default: true, description: "Verify identity servers' TLS certificates (POST /account/3pid/bind, /unbind, /delete, deactivation). Leave on outside of tests." }),
        tls_trusted_ca_path: Type.Optional(Type.String({ minLength: 1, description: "Extra PEM CA certificates trusted for identity servers (besides the system's)." })),
        tls_skip_verify_servers: Type.Array(Type.String({ minLength: 1 }), { default: [], description: "Identity server names (host[:port]) whose TLS certificate is not verified (local test servers only)." }),
        plain_http_servers: Type.Array(Type.String({ minLength: 1 }), { default: [], description: "Identity server names (host[:port]) reached over plain HTTP instead of HTTPS (local test servers only)." }),
        allow_loopback: Type.Boolean({ default: false, description: "Let clients name identity servers on loopback addresses (127.0.0.0/8, ::1). Off: identity servers are public hosts, and one that resolves to a loopback, private, link-local or other non-public address is refused." }),
        request_timeout_ms: Type.Integer({ minimum: 1000, maximum: 120_000, default: 20_000, description: "How long one request to an identity server may take." }),
      },
      { ...Strict, default: {} },
    ),
    presence: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: "Track and share presence (online, unavailable, offline, status messages). Off: PUT /presence is accepted and ignored, everyone reads as offline, /sync carries none (as Synapse's use_presence: false)." }),
      },
      { ...Strict, default: {} },
    ),
    memory: Type.Object(
      {
        trim_interval_ms: Type.Integer({
          minimum: 0,
          default: 10_000,
          description: "At most this often, and only after requests came in, a full garbage collection hands freed memory back to the system (a pause of a few tens of milliseconds); resident memory then follows what is live instead of the busiest moment. In the first quiet moment after a load it also empties the caches the load filled and releases SQLite's page cache (they fill again as requests come). 0: never.",
        }),
      },
      { ...Strict, default: {} },
    ),
    sync: Type.Object(
      {
        response_cache_ms: Type.Integer({
          minimum: 0,
          default: 120_000,
          description: "How long an answer to /sync is kept for the same request (a client retrying after a dropped connection gets it again, not recomputed), as Synapse's sync_response_cache_duration. 0: not kept.",
        }),
      },
      { ...Strict, default: {} },
    ),
    voip: Type.Object(
      {
        turn_uris: Type.Array(Type.String({ minLength: 1 }), { default: [], description: "TURN server URIs given to clients for calls (GET /voip/turnServer), e.g. turn:turn.example.org:3478?transport=udp. None: clients get {} and use no TURN server." }),
        turn_shared_secret: Type.Optional(Type.String({ minLength: 1, description: "The TURN server's shared secret (coturn's static-auth-secret): each user gets a time-limited username and password made from it." })),
        turn_username: Type.Optional(Type.String({ minLength: 1, description: "A fixed TURN username, when there is no shared secret." })),
        turn_password: Type.Optional(Type.String({ minLength: 1, description: "The fixed TURN password that goes with turn_username." })),
        turn_user_lifetime_ms: Type.Integer({ minimum: 60_000, default: 86_400_000, description: "How long the credentials made from turn_shared_secret are valid." }),
      },
      { ...Strict, default: {} },
    ),
    app_services: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: "Application service registration files (YAML: id, url, as_token, hs_token, sender_localpart, namespaces, rate_limited, protocols), read at start.",
    }),
    app_service_config_files: Type.Array(Type.String({ minLength: 1 }), { default: [], description: "Synapse's name for app_services; the two lists are joined." }),
    app_service_verify_tls: Type.Boolean({ default: true, description: "Verify application services' TLS certificates (https:// urls). Leave on outside of tests." }),
    trusted_proxies: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: "Addresses of reverse proxies in front of Portier: from these, the client's address is read from X-Forwarded-For (for per-address rate limits).",
    }),
    plugins: Type.Array(
      Type.Union([
        Type.String({ minLength: 1 }),
        Type.Object(
          {
            name: Type.Optional(Type.String({ minLength: 1 })),
            path: Type.Optional(Type.String({ minLength: 1 })),
            config: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
            fail_mode: Type.Optional(Type.Union([Type.Literal("open"), Type.Literal("closed")])),
            timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 60_000 })),
          },
          Strict,
        ),
      ]),
      {
        default: ["rate-limit"],
        description:
          "Plugins in order: a bundled plugin's name (rate-limit, knock-policy, spam-policy, http-antispam), a path to a plugin file (.ts or .js), " +
          "or {name | path, config, fail_mode: open|closed (default open), timeout_ms (default 1000)}. Reloaded on SIGHUP.",
      },
    ),
    log_level: Type.Union([Type.Literal("debug"), Type.Literal("info"), Type.Literal("warn"), Type.Literal("error")], { default: "info" }),
    log_format: Type.Union([Type.Literal("text"), Type.Literal("json")], {
      default: "text",
      description: "Log lines on stderr as text, or as json: one JSON object per line ({time, level, message, ...fields}) for log collectors.",
    }),
    metrics: Type.Object(
      {
        enabled: Type.Boolean({ default: false, description: "Serve Prometheus metrics at /metrics on a listener of their own (never on the client or federation listener)." }),
        bind_address: Type.String({ minLength: 1, default: "127.0.0.1", description: "Address of the metrics listener: keep it where only Prometheus can reach it." }),
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 9000, description: "Port of the metrics listener (0: any free port)." }),
      },
      { ...Strict, default: {} },
    ),
  },
  Strict,
);

export type Config = Static<typeof ConfigSchema>;
