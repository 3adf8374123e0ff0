// Package store is the persistence seam of llmgate: tenants, users, API keys and usage records.
// Two implementations share one contract: store/sqlite (the embedded default) and store/postgres
// (production). store/storetest is the conformance suite both must pass against real servers.
package store

import (
	"context"
	"errors"
	"math/big"
	"time"
)

// Sentinel errors callers check with errors.Is.
var (
	// ErrNotFound means the row asked for does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means a unique constraint (id, secret hash, name) was violated.
	ErrConflict = errors.New("store: conflict")
)

// DefaultTenant is the tenant every user and key belongs to unless told otherwise. The first
// migration creates it.
const DefaultTenant = "default"

// Tenant is an organisation: the outermost quota and billing subject. Its limits and budgets are
// quota policies of subject type "tenant".
type Tenant struct {
	ID   string
	Name string
	// Models is the allowlist of public model names for every key of the tenant; empty means every
	// model. A key's own allowlist narrows it further.
	Models    []string
	Metadata  map[string]string // never nil when read
	CreatedAt time.Time
	UpdatedAt *time.Time
	DeletedAt *time.Time // soft deletion: the ledger keeps referring to the id
	// ResponseCache opts every key of the tenant in to the response cache.
	ResponseCache bool
}

// TenantFilter narrows ListTenants. Zero values mean "any".
type TenantFilter struct {
	// Search matches a substring of the id or the name (LIKE, escaped).
	Search         string
	IncludeDeleted bool
	Limit          int // 0 means a default of 100
	Offset         int
}

// User owns keys. Tier names a set of default limits in the quota config.
type User struct {
	ID         string
	TenantID   string
	Tier       string
	ExternalID string
	Email      string
	Metadata   map[string]string // never nil when read
	CreatedAt  time.Time
	UpdatedAt  *time.Time
	DeletedAt  *time.Time // soft deletion: the ledger keeps referring to the id
}

// UserFilter narrows ListUsers. Zero values mean "any". Exact fields compare equal; Email and
// Search match substrings (LIKE, escaped).
type UserFilter struct {
	TenantID       string
	Tier           string
	ExternalID     string
	Email          string // substring of the email
	Search         string // substring of the id, email or external id
	IncludeDeleted bool
	Limit          int // 0 means a default of 100
	Offset         int
}

// APIKey is a caller credential. The secret itself is never stored: only the SHA-256 of the
// plaintext (in a separate secrets table, so rotation can keep two secrets alive) and a display
// prefix.
type APIKey struct {
	ID        string
	Name      string
	Prefix    string // first characters of the plaintext, for display ("sk-lg-AbCd")
	UserID    string // may be empty: a key without a user is its own quota subject
	TenantID  string
	Models    []string // allowlist of public model names; empty means every model
	ExpiresAt *time.Time
	RevokedAt *time.Time
	Metadata  map[string]string // never nil when read
	CreatedAt time.Time
	UpdatedAt *time.Time
	// TenantModels is the allowlist of the key's tenant (read only, filled by KeyBySecret, GetKey
	// and ListKeys): the key may use a model only when both lists allow it.
	TenantModels []string
	// ResponseCache opts the key in to the response cache for every model; TenantResponseCache
	// is its tenant's flag (read only, filled as TenantModels is).
	ResponseCache       bool
	TenantResponseCache bool
}

// Key states for KeyFilter.Status.
const (
	KeyActive  = "active"  // neither revoked nor expired at KeyFilter.Now
	KeyRevoked = "revoked" // revoked
	KeyExpired = "expired" // not revoked, past its expiry at KeyFilter.Now
)

// KeyFilter narrows ListKeys. Zero values mean "any".
type KeyFilter struct {
	UserID   string
	TenantID string
	// Name matches a substring of the name (LIKE, escaped); Prefix the start of the display prefix.
	Name   string
	Prefix string
	Status string    // KeyActive, KeyRevoked, KeyExpired or empty
	Now    time.Time // the time Status is judged at (zero: now)
	Limit  int       // 0 means a default of 100
	Offset int
}

// Admin token roles.
const (
	RoleAdmin   = "admin"   // everything
	RoleViewer  = "viewer"  // read only
	RoleBilling = "billing" // usage, billing, pricing and credits
)

// AdminToken is a credential of the admin API. Only the SHA-256 of the token is stored.
type AdminToken struct {
	ID       string
	Name     string
	Prefix   string // first characters of the plaintext, for display
	Role     string // RoleAdmin, RoleViewer or RoleBilling
	TenantID string // empty: every tenant; else the token sees and changes only this tenant
	// CreatedBy is the actor that made it ("bootstrap" or another token's id).
	CreatedBy  string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	LastUsedAt *time.Time
}

// AdminTokenFilter narrows ListAdminTokens. Zero values mean "any".
type AdminTokenFilter struct {
	Role     string
	TenantID string
	Name     string // substring of the name (LIKE, escaped)
	Limit    int    // 0 means a default of 100
	Offset   int
}

// AdminAuditEntry is one admin_audit row: a mutation made through the admin API. Before and After
// are JSON documents (nil when there was nothing before, or nothing after) and never hold secrets.
type AdminAuditEntry struct {
	ID        int64
	Actor     string // "bootstrap" or the admin token's id
	Action    string // "<resource>.<verb>", such as "key.create"
	Target    string // the id of what changed
	TenantID  string // the tenant the target belongs to; empty for global resources
	Before    []byte
	After     []byte
	RequestID string
	At        time.Time
}

// AdminAuditFilter narrows ListAdminAudit. Zero values mean "any"; At in [From, To).
type AdminAuditFilter struct {
	Actor    string
	Action   string // exact, or a prefix ending in "." ("key.")
	Target   string
	TenantID string
	From, To time.Time
	Limit    int // 0 means a default of 100
	Offset   int
}

// DeploymentOverride is a run-time change of one deployment, merged over the config file at each
// reload. A nil field keeps what the file says.
type DeploymentOverride struct {
	DeploymentID string
	Enabled      *bool
	Weight       *int
	UpdatedBy    string
	UpdatedAt    time.Time
}

// CatalogKind is what a catalog entry defines.
type CatalogKind string

// The kinds of catalog entries.
const (
	CatalogProvider CatalogKind = "provider"
	CatalogModel    CatalogKind = "model"
)

// CatalogEntry is a provider or a public model defined through the admin API rather than the
// config file; the gateway merges the entries with the file's whenever it builds the routing
// table. Spec holds the entry's settings as a JSON document the store does not read; Secret is a
// provider's credential sealed (encrypted) by the gateway, "" when it has none: the store never
// holds a credential in the clear.
type CatalogEntry struct {
	Kind      CatalogKind
	Name      string
	Spec      []byte
	Secret    string
	CreatedAt time.Time
	UpdatedBy string
	UpdatedAt time.Time
}

// Experiment states: a draft takes no traffic yet, a running experiment splits its model's
// traffic, a paused one takes none until started again, and a stopped one is over for good (its
// records stay, for its results).
const (
	ExperimentDraft   = "draft"
	ExperimentRunning = "running"
	ExperimentPaused  = "paused"
	ExperimentStopped = "stopped"
)

// Experiment is an A/B experiment on a public model. Spec holds its description, variants and
// exclusions as a JSON document the admin API writes and the store does not read; Model and Salt
// are fixed when it is made (the salt decides which caller gets which variant).
type Experiment struct {
	ID        string
	Model     string
	State     string
	Salt      string
	Spec      []byte
	CreatedAt time.Time
	UpdatedBy string
	UpdatedAt time.Time
}

// VariantResult is what the usage records of one variant of an experiment add up to. Latency
// percentiles are over the successful requests (status below 400), TTFT ones over those of them
// that sent a first byte, cost over the priced records; each comes with its sample size. A
// percentile is the nearest-rank one: the smallest value at or above which p of the samples lie.
type VariantResult struct {
	Variant                                    string
	Requests, Errors                           int64
	LatencySamples, LatencyP50MS, LatencyP95MS int64
	TTFTSamples, TTFTP50MS, TTFTP95MS          int64
	PromptTokens, CompletionTokens             int64
	CostSamples                                int64
	CostPicoUSD                                *big.Int // sum over the priced records
}

// ResponseRoute remembers where a Responses API response lives: the deployment (and its provider,
// the upstream account) that produced it, and its owner, so that follow-ups and GET/DELETE by id go
// back there for the owner's tenant only.
type ResponseRoute struct {
	ResponseID   string
	TenantID     string
	KeyID        string
	Model        string // the public model of the request that made it
	DeploymentID string
	Provider     string
	CreatedAt    time.Time
	ExpiresAt    time.Time // the route is dead from then on
	// History and Response are set for a response the gateway made by translation for a
	// chat-only deployment, nil otherwise: the conversation a follow-up replays (a JSON array of
	// input items) and the Response object itself (JSON). The gateway, not the upstream, keeps it.
	History  []byte
	Response []byte
}

// Translated reports whether the gateway keeps the response itself (see History).
func (r ResponseRoute) Translated() bool { return r.Response != nil }

// UsageRecord is the ledger row of one authenticated request. Exactly one is written per request
// whatever its ending. Money is integer: CostPicoUSD is tokens × micro-USD-per-1M, exact.
type UsageRecord struct {
	RequestID        string // the gateway's own id (UUIDv7); unique with StartedAt
	ClientRequestID  string // a valid X-Request-Id the client sent, searchable, never a key
	TraceID          string
	KeyID            string
	UserID           string
	TenantID         string
	SessionID        string
	Model            string // public model name the client asked for
	UpstreamModel    string
	Provider         string
	Deployment       string
	Endpoint         string // "chat/completions", "completions", "embeddings"
	Stream           bool
	Status           int    // HTTP status returned to the client (499 for a client that went away)
	ErrorType        string // empty on success
	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
	ReasoningTokens  int64
	UsageSource      string // "provider" | "estimated" | "partial" | "" (no upstream call)
	CostPicoUSD      *int64 // nil when the model has no price
	PriceVersion     string
	// Charge says whether the cost is charged to a credit account (not stored in the row: the
	// charge is the credit ledger's entry). False for what the charging policy exempts, such as
	// answers cut short by an upstream fault.
	Charge bool
	// PayerType and PayerID name the subject whose credit account the cost is charged to ("user"
	// or "tenant"), as billing decided; a record that names none charges no account. Not stored
	// in the row either: the charge names its account.
	PayerType string
	PayerID   string
	// Units counts what the record was billed for beyond tokens, in Unit: "image" (images
	// made), "second" (seconds of input audio) or "character" (characters of speech input);
	// 0 and "" when it was billed by tokens alone.
	Units     int64
	Unit      string
	LatencyMS int64
	TTFTMS    int64 // time to first byte of the answer; 0 when none was sent
	StartedAt time.Time
	EndedAt   time.Time
	// ServedModel is the public model that answered: Model, or the fallback model that served
	// the request when Model's deployments failed; empty when no upstream answered.
	ServedModel string
	// ReplayOf is the request id of the record whose answer this one sent again (usage source
	// "cache": a response cache hit, or an idempotent replay); "" for the others.
	ReplayOf string
	// Experiment and Variant name the A/B experiment that routed the request and the variant
	// it was assigned; "" when no running experiment took it.
	Experiment string
	Variant    string
	// CacheWriteTokens is the share of PromptTokens written to the provider's prompt cache
	// (Anthropic's cache_creation_input_tokens), priced at the cache-write price.
	CacheWriteTokens int64
}

// ReachedModel reports whether the request reached a model: the gateway sent it (or tried to)
// to a deployment of a configured model. Only such records count in the billing rollups; the
// others (a model string no configuration names, a model the key may not use, a malformed body,
// a refusal by quota or credit, every deployment disabled or its breaker open) stay in the usage
// records, for the audit, and cost nothing.
func (r *UsageRecord) ReachedModel() bool { return r.Deployment != "" }

// UsageFilter narrows ListUsage. Zero values mean "any".
type UsageFilter struct {
	UserID   string
	KeyID    string
	TenantID string
	Model    string
	Status   int
	From, To time.Time // StartedAt in [From, To)
	// TraceID and ClientRequestID find the records of one trace or one client-supplied request id
	// (GET /admin/audit/{traceId}, audit search).
	TraceID         string
	ClientRequestID string
	Limit           int // 0 means a default of 100
	Offset          int
	// After pages by keyset instead of by Offset: only the records that come after this one in
	// ListUsage's order (started_at, then request_id, both descending). An export walks every
	// matching record this way without the cost of a growing offset, and a record written
	// meanwhile neither shifts nor repeats a row.
	After *UsageCursor
}

// UsageCursor names a position in ListUsage's order: the start time and request id of the last
// record of a page (a record's start time and request id are unique together).
type UsageCursor struct {
	StartedAt time.Time
	RequestID string
}

// Buckets of UsageStatsFilter.Bucket: the UTC hour, day or calendar month a record started in.
const (
	BucketHour  = "hour"
	BucketDay   = "day"
	BucketMonth = "month"
)

// Dimensions of UsageStatsFilter.GroupBy.
const (
	GroupModel  = "model"
	GroupUser   = "user"
	GroupTenant = "tenant"
	GroupKey    = "key"
)

// UsageStatsFilter asks UsageStats for sums of usage records: over time (Bucket), by a
// dimension (GroupBy), or both. Unlike the billing rollups, which hold only what reached a model
// and only by day, these count every record, refusals and errors included.
type UsageStatsFilter struct {
	TenantID, UserID, KeyID, Model string
	From, To                       time.Time // StartedAt in [From, To)
	Bucket                         string    // BucketHour, BucketDay, BucketMonth, or "": one bucket
	GroupBy                        string    // GroupModel, GroupUser, GroupTenant, GroupKey, or ""
	// Limit keeps the first groups in UsageStats' order (the biggest spenders); 0: all of them.
	Limit int
}

// UsageStat is one bucket (and group) of UsageStats.
type UsageStat struct {
	Bucket                                                        time.Time // the bucket's start, UTC; zero without a Bucket
	Group                                                         string    // the group's id ("" for records without one); "" without a GroupBy
	Requests                                                      int64
	Errors                                                        int64 // records with a status of 400 or more, refusals included
	RateLimited                                                   int64 // records answered 429
	PromptTokens, CompletionTokens, CachedTokens, ReasoningTokens int64
	CostPicoUSD                                                   *big.Int // never nil; the sum of the records' costs (unpriced ones add nothing)
}

// QuotaPolicy overrides the tier limits of one subject ("user", "key" or "tenant"), optionally for
// one public model only. A nil limit inherits (from the tier for users, unlimited for keys and
// tenants); 0 means unlimited.
type QuotaPolicy struct {
	SubjectType  string
	SubjectID    string
	Model        string // empty: every model
	RPM          *int64
	TPM          *int64
	TokensPerDay *int64
	Concurrent   *int64
	// BudgetDayMicroUSD and BudgetMonthMicroUSD cap the subject's spend (the cost of its usage
	// records) per UTC day and calendar month (UTC), in micro-USD. They never inherit: nil means
	// no budget, as does 0.
	BudgetDayMicroUSD   *int64
	BudgetMonthMicroUSD *int64
	UpdatedAt           time.Time
}

// SpendFilter names one subject whose spend Spend sums from the daily rollups.
type SpendFilter struct {
	SubjectType string // "user", "key" or "tenant"
	SubjectID   string
	Model       string    // empty: every model
	Day         time.Time // the UTC day to report; its month is the month reported
}

// ModelPrice is one version of a model's price in integer micro-USD per 1M tokens, so a record's
// cost is Σ tokens × price in pico-USD, exact.
type ModelPrice struct {
	Model      string
	InputPerM  int64
	OutputPerM int64
	// CachedInputPerM prices cached prompt tokens; 0 means the input price.
	CachedInputPerM int64
	// ReasoningPerM prices reasoning tokens; 0 means the output price.
	ReasoningPerM int64
	// ImagePrices prices one image, micro-USD, by "quality/size", "size" or "default"; nil for
	// none (billing.Price.Images).
	ImagePrices map[string]int64
	// AudioSecond (micro-USD per second of input audio), CharactersPerM (micro-USD per 1M
	// characters of speech input) and Request (micro-USD per request) are the other unit prices;
	// 0 means none.
	AudioSecond    int64
	CharactersPerM int64
	Request        int64
	// CacheWritePerM prices prompt tokens written to the provider's cache; 0 means the input
	// price.
	CacheWritePerM int64
	EffectiveFrom  time.Time
	// Version identifies this price in usage records (price_version).
	Version string
}

// DailyUsage is one billing_record row: one (UTC day, tenant, user, key, model, priced) rollup.
// The records of a group that have a cost and those that have none (an unpriced model, a cost
// that could not be computed) sum into two rows, so unpriced usage is never counted as $0.
type DailyUsage struct {
	Day                            time.Time // midnight UTC
	TenantID, UserID, KeyID, Model string
	Requests                       int64
	PromptTokens, CompletionTokens int64
	CachedTokens, ReasoningTokens  int64
	// CostPicoUSD is the sum of the records' costs (NUMERIC: sums outgrow int64); nil for the
	// row of records without a cost, whose cost is unknown.
	CostPicoUSD      *big.Int
	CacheWriteTokens int64
}

// Priced reports whether the row sums records that have a cost.
func (d *DailyUsage) Priced() bool { return d.CostPicoUSD != nil }

// BillingFilter narrows BillingRecords. Zero values mean "any"; From/To are days, [From, To).
type BillingFilter struct {
	TenantID, UserID, KeyID, Model string
	From, To                       time.Time
	Limit                          int // 0 means a default of 1000
	Offset                         int
}

// CreditAccount is a prepaid balance of a user or tenant.
type CreditAccount struct {
	ID             string
	SubjectType    string // "user" | "tenant"
	SubjectID      string
	BalancePicoUSD *big.Int
	// ChargedPicoUSD is the total of every charge ever applied (positive): what moved the balance
	// by usage, as opposed to grants and adjustments. A replica compares it with the charges it
	// has seen to know which of them the balance already reflects.
	ChargedPicoUSD *big.Int
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// CreditAccountFilter narrows ListCreditAccounts. Zero values mean "any".
type CreditAccountFilter struct {
	SubjectType string // "user" or "tenant"
	// TenantID keeps the tenant's own account and the accounts of its users.
	TenantID string
	Limit    int // 0 means a default of 100
	Offset   int
}

// CreditEntry is one append-only credit_ledger row. Charges are negative.
type CreditEntry struct {
	ID            int64
	AccountID     string
	Kind          string // "charge" | "grant" | "refund" | "adjust"
	AmountPicoUSD *big.Int
	RequestID     string // set for charges: unique, so a replayed charge is a no-op
	Note          string
	CreatedAt     time.Time
}

// CreditTotal is the sum of an account's ledger entries of one kind over a span of time.
type CreditTotal struct {
	Kind          string
	Entries       int64
	AmountPicoUSD *big.Int
}

// Store is everything the gateway persists. Implementations are safe for concurrent use.
type Store interface {
	// Migrate applies the embedded migrations not yet applied. It is idempotent and safe to call
	// from several replicas at once.
	Migrate(ctx context.Context) error
	// Ping checks the store answers (used by /health/ready).
	Ping(ctx context.Context) error
	Close() error

	// CreateTenant inserts a tenant; ErrConflict if the id exists.
	CreateTenant(ctx context.Context, t Tenant) error
	// GetTenant returns the tenant, soft-deleted or not, or ErrNotFound.
	GetTenant(ctx context.Context, id string) (Tenant, error)
	// ListTenants returns tenants by id.
	ListTenants(ctx context.Context, f TenantFilter) ([]Tenant, error)
	// UpdateTenant replaces the name, models and metadata of a live tenant and sets UpdatedAt;
	// ErrNotFound when there is none (or it is deleted).
	UpdateTenant(ctx context.Context, t Tenant) error
	// DeleteTenant soft-deletes a tenant at the given time. ErrConflict when it still has live
	// users or keys that are not revoked, or it is the default tenant; ErrNotFound when there is
	// none (or it is already deleted).
	DeleteTenant(ctx context.Context, id string, at time.Time) error

	// CreateUser inserts a user; ErrConflict if the id (or the external id in its tenant) exists,
	// ErrNotFound if its tenant does not exist or is deleted.
	CreateUser(ctx context.Context, u User) error
	// GetUser returns the user, soft-deleted or not, or ErrNotFound.
	GetUser(ctx context.Context, id string) (User, error)
	// ListUsers returns users newest first.
	ListUsers(ctx context.Context, f UserFilter) ([]User, error)
	// UpdateUser replaces the tier, external id, email and metadata of a live user (not its
	// tenant) and sets UpdatedAt; ErrNotFound when there is none (or it is deleted), ErrConflict
	// when the external id is taken in its tenant.
	UpdateUser(ctx context.Context, u User) error
	// DeleteUser soft-deletes a live user and revokes its keys not yet revoked, at the given time,
	// in one transaction; ErrNotFound when there is none (or it is already deleted).
	DeleteUser(ctx context.Context, id string, at time.Time) error

	// CreateKey inserts the key and its first secret hash (hex SHA-256 of the plaintext);
	// ErrConflict if the id or hash exists, ErrNotFound if its user or tenant does not.
	CreateKey(ctx context.Context, k APIKey, secretHash string) error
	// KeyBySecret returns the key whose live secret has this hash: ErrNotFound when none. Expiry and
	// revocation are reported in the returned key, not as errors; a secret past its own grace
	// expiry is not live.
	KeyBySecret(ctx context.Context, secretHash string, now time.Time) (APIKey, error)
	GetKey(ctx context.Context, id string) (APIKey, error)
	ListKeys(ctx context.Context, f KeyFilter) ([]APIKey, error)
	// RevokeKey marks the key revoked at the given time; ErrNotFound when it does not exist.
	RevokeKey(ctx context.Context, id string, at time.Time) error
	// UpdateKey replaces the name, models, expiry and metadata of a key that is not revoked, and
	// sets UpdatedAt; ErrNotFound when there is none (or it is revoked).
	UpdateKey(ctx context.Context, k APIKey) error
	// RotateKey gives a key that is not revoked a new secret (and display prefix) in one
	// transaction: every live secret of the key stays live until graceUntil (or its own earlier
	// expiry), the new one has none. ErrNotFound when there is no such key (or it is revoked),
	// ErrConflict when the hash exists.
	RotateKey(ctx context.Context, id, secretHash, prefix string, now, graceUntil time.Time) error

	// CreateAdminToken inserts a token with the hex SHA-256 of its plaintext; ErrConflict if the id
	// or hash exists, ErrNotFound if its tenant does not.
	CreateAdminToken(ctx context.Context, t AdminToken, tokenHash string) error
	// AdminTokenByHash returns the token with this hash, revoked or expired alike (the caller
	// judges); ErrNotFound when none.
	AdminTokenByHash(ctx context.Context, tokenHash string) (AdminToken, error)
	GetAdminToken(ctx context.Context, id string) (AdminToken, error)
	// ListAdminTokens returns tokens newest first.
	ListAdminTokens(ctx context.Context, f AdminTokenFilter) ([]AdminToken, error)
	// RevokeAdminToken marks the token revoked (keeping the first time); ErrNotFound when none.
	RevokeAdminToken(ctx context.Context, id string, at time.Time) error
	// TouchAdminToken sets the token's last use.
	TouchAdminToken(ctx context.Context, id string, at time.Time) error

	// InsertAdminAudit appends an entry to the admin audit log and returns its id.
	InsertAdminAudit(ctx context.Context, e AdminAuditEntry) (int64, error)
	// ListAdminAudit returns entries newest first.
	ListAdminAudit(ctx context.Context, f AdminAuditFilter) ([]AdminAuditEntry, error)

	// DeploymentOverrides returns every override, by deployment id.
	DeploymentOverrides(ctx context.Context) ([]DeploymentOverride, error)
	// PutDeploymentOverride inserts or replaces the override of one deployment, setting UpdatedAt
	// to now.
	PutDeploymentOverride(ctx context.Context, o DeploymentOverride) error
	// DeleteDeploymentOverride removes one; ErrNotFound when there is none.
	DeleteDeploymentOverride(ctx context.Context, deploymentID string) error

	// CatalogEntries returns every catalog entry: providers first, then models, each kind by
	// name in byte order.
	CatalogEntries(ctx context.Context) ([]CatalogEntry, error)
	// CreateCatalogEntry inserts an entry; ErrConflict when one of that kind and name exists.
	CreateCatalogEntry(ctx context.Context, e CatalogEntry) error
	// UpdateCatalogEntry replaces an entry's spec, secret and update stamp (its creation time
	// stays); ErrNotFound when there is none of that kind and name.
	UpdateCatalogEntry(ctx context.Context, e CatalogEntry) error
	// DeleteCatalogEntry removes one; ErrNotFound when there is none.
	DeleteCatalogEntry(ctx context.Context, kind CatalogKind, name string) error

	// Experiments returns every experiment, by id in byte order.
	Experiments(ctx context.Context) ([]Experiment, error)
	// CreateExperiment inserts one; ErrConflict when the id exists.
	CreateExperiment(ctx context.Context, e Experiment) error
	// UpdateExperiment replaces an experiment's state, spec and update stamp (its model, salt
	// and creation time stay); ErrNotFound when there is none.
	UpdateExperiment(ctx context.Context, e Experiment) error
	// ExperimentResults adds up the usage records of an experiment by variant, in byte order of
	// the variant names; none when it has no records.
	ExperimentResults(ctx context.Context, experimentID string) ([]VariantResult, error)

	// PutResponseRoute inserts or replaces the route of one response id.
	PutResponseRoute(ctx context.Context, r ResponseRoute) error
	// PutResponseRoutes inserts or replaces the routes of many response ids in one transaction,
	// in order (an id twice ends as its last route): all are written or none.
	PutResponseRoutes(ctx context.Context, rs []ResponseRoute) error
	// ResponseRoute returns the route of a response id that has not expired at now; ErrNotFound
	// when there is none.
	ResponseRoute(ctx context.Context, responseID string, now time.Time) (ResponseRoute, error)
	// DeleteResponseRoute removes the route of a response id; ErrNotFound when there is none.
	DeleteResponseRoute(ctx context.Context, responseID string) error
	// PurgeResponseRoutes removes the routes expired before `before` and returns how many.
	PurgeResponseRoutes(ctx context.Context, before time.Time) (int64, error)

	// InsertUsage writes a batch of records idempotently: a record whose (RequestID, StartedAt)
	// already exists is skipped. In the same transaction, and only for the rows that were new, it
	// adds each record that reached a model to its billing_record rollup (UTC day of StartedAt;
	// the priced row when it has a cost, the unpriced one when not) and, for a record with
	// Charge set and a cost, charges the cost to the credit account of its user, or else of its
	// tenant, when one exists (a 'charge' entry keyed by request id, and the balance lowered). A
	// replayed batch therefore never double-counts. It returns how many rows were new.
	InsertUsage(ctx context.Context, recs []UsageRecord) (int, error)
	// ListUsage returns records newest first.
	ListUsage(ctx context.Context, f UsageFilter) ([]UsageRecord, error)

	// UsageStats sums usage records by f.Bucket and f.GroupBy, ordered by bucket, then by cost
	// (largest first), requests (most first) and group id; buckets without records are left out.
	// An unknown Bucket or GroupBy is an error.
	UsageStats(ctx context.Context, f UsageStatsFilter) ([]UsageStat, error)

	// PutQuotaPolicy inserts or replaces the policy of (SubjectType, SubjectID, Model), setting
	// UpdatedAt to now.
	PutQuotaPolicy(ctx context.Context, p QuotaPolicy) error
	// QuotaPolicies returns the policies of one subject (every model), or of every subject when
	// subjectType is empty, ordered by subject type, id and model.
	QuotaPolicies(ctx context.Context, subjectType, subjectID string) ([]QuotaPolicy, error)
	// DeleteQuotaPolicy removes one policy; ErrNotFound when there is none.
	DeleteQuotaPolicy(ctx context.Context, subjectType, subjectID, model string) error

	// PutPrice adds a price version; ErrConflict when (Model, EffectiveFrom) exists.
	PutPrice(ctx context.Context, p ModelPrice) error
	// Prices returns, for every model, the version in force at `at` (the latest EffectiveFrom
	// not after it), ordered by model.
	Prices(ctx context.Context, at time.Time) ([]ModelPrice, error)
	// PriceHistory returns a model's versions, newest first.
	PriceHistory(ctx context.Context, model string) ([]ModelPrice, error)

	// BillingRecords returns rollup rows, by day then tenant, user, key, model, the priced row
	// before the unpriced one.
	BillingRecords(ctx context.Context, f BillingFilter) ([]DailyUsage, error)
	// Spend sums a subject's cost from the rollups: month to date (from the first of f.Day's
	// calendar month, UTC, through f.Day) and f.Day alone. An empty subject id is an error.
	Spend(ctx context.Context, f SpendFilter) (month, day *big.Int, err error)

	// EnsureCreditAccount returns the account of a subject, creating it with a zero balance.
	EnsureCreditAccount(ctx context.Context, subjectType, subjectID string) (CreditAccount, error)
	// CreditAccountOf returns the account of a subject; ErrNotFound when it has none.
	CreditAccountOf(ctx context.Context, subjectType, subjectID string) (CreditAccount, error)
	// ListCreditAccounts returns accounts by subject type, then subject id.
	ListCreditAccounts(ctx context.Context, f CreditAccountFilter) ([]CreditAccount, error)
	// AddCredit appends a grant, refund or adjustment (not a charge) and moves the balance by
	// amount, in one transaction.
	AddCredit(ctx context.Context, accountID, kind string, amount *big.Int, note string) (CreditEntry, error)
	// CreditEntries returns an account's ledger, newest first.
	CreditEntries(ctx context.Context, accountID string, limit, offset int) ([]CreditEntry, error)
	// CreditHistory returns an account's ledger entries made at or after since (zero: all of
	// them), newest first, a page at a time.
	CreditHistory(ctx context.Context, accountID string, since time.Time, limit, offset int) ([]CreditEntry, error)
	// CreditTotals sums an account's ledger entries made at or after since (zero: all of them)
	// by kind, in kind order; kinds without entries are left out.
	CreditTotals(ctx context.Context, accountID string, since time.Time) ([]CreditTotal, error)

	AlertStore
	ConsoleSessionStore
}
