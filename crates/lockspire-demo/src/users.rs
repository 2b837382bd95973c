//! The host's users: a `demo_users` table with argon2 password hashes, and the axum-login
//! traits that turn it into sign-in.
//!
//! Lockspire never sees this table. It learns about users only through
//! [`crate::resolver::DemoResolver`].

use std::fmt;
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum_login::{AuthUser, AuthnBackend, UserId};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::random;

/// axum-login's session handle for this app's users.
pub type AuthSession = axum_login::AuthSession<Backend>;

/// A user-store failure.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Hashing failed, or a stored hash is not a valid PHC string.
    #[error("password hash: {0}")]
    Hash(String),
    /// The OS random number generator failed.
    #[error("random number generator: {0}")]
    Random(#[from] getrandom::Error),
    /// The blocking hashing task did not finish.
    #[error("hashing task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A user as the host stores them.
#[derive(Clone)]
pub struct User {
    /// Stable internal id; Lockspire's `sub`. Never reassigned, unlike usernames or emails.
    pub id: String,
    /// Login name.
    pub username: String,
    /// argon2id PHC string.
    password_hash: String,
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// Whether the address was verified.
    pub email_verified: bool,
}

impl fmt::Debug for User {
    // The hash stays out of logs: it is offline-crackable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl AuthUser for User {
    type Id = String;

    fn id(&self) -> String {
        self.id.clone()
    }

    /// axum-login keeps this in the session and compares it on every request, so changing the
    /// password signs the user out everywhere.
    fn session_auth_hash(&self) -> &[u8] {
        self.password_hash.as_bytes()
    }
}

/// The `demo_users` table.
#[derive(Clone)]
pub struct Users {
    pool: AnyPool,
    /// A real hash checked when the username is unknown, so a wrong username costs as much
    /// time as a wrong password and response times do not reveal which accounts exist.
    dummy_hash: Arc<str>,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users").finish_non_exhaustive()
    }
}

/// TEXT and BIGINT only, so the same statement runs on SQLite and PostgreSQL.
const CREATE_USERS: &str = "CREATE TABLE IF NOT EXISTS demo_users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    email_verified BIGINT NOT NULL
)";

/// One user by id.
const SELECT_BY_ID: &str = "SELECT id, username, password_hash, name, email, email_verified \
                            FROM demo_users WHERE id = $1";

/// One user by username.
const SELECT_BY_USERNAME: &str = "SELECT id, username, password_hash, name, email, email_verified \
                                  FROM demo_users WHERE username = $1";

/// Decodes a `demo_users` row.
fn user_from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        email_verified: row.try_get::<i64, _>("email_verified")? != 0,
    })
}

/// Hashes a password with argon2id and a fresh salt, off the async runtime (it is slow on
/// purpose).
async fn hash_password(password: String) -> Result<String, UsersError> {
    let salt = SaltString::encode_b64(&random::bytes::<16>()?)
        .map_err(|e| UsersError::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| UsersError::Hash(e.to_string()))
    })
    .await?
}

/// Checks a password against a PHC string, off the async runtime.
async fn verify_password(password: String, hash: String) -> Result<bool, UsersError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(|e| UsersError::Hash(e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await?
}

impl Users {
    /// Creates the table if needed.
    pub async fn new(pool: AnyPool) -> Result<Self, UsersError> {
        sqlx::query(CREATE_USERS).execute(&pool).await?;
        let dummy_hash = hash_password("no user has this password".to_owned()).await?;
        Ok(Self {
            pool,
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Adds a user with a verified email unless the username is taken. Returns the user's id.
    pub async fn seed(
        &self,
        username: &str,
        password: &str,
        name: &str,
        email: &str,
    ) -> Result<String, UsersError> {
        if let Some(existing) = self.by_username(username).await? {
            return Ok(existing.id);
        }
        let id = random::token::<16>()?;
        let hash = hash_password(password.to_owned()).await?;
        // ON CONFLICT keeps two processes seeding one PostgreSQL at once from failing.
        sqlx::query(
            "INSERT INTO demo_users (id, username, password_hash, name, email, email_verified) \
             VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT (username) DO NOTHING",
        )
        .bind(&id)
        .bind(username)
        .bind(&hash)
        .bind(name)
        .bind(email)
        .execute(&self.pool)
        .await?;
        tracing::info!(username, "created the demo account");
        Ok(self
            .by_username(username)
            .await?
            .map(|u| u.id)
            .unwrap_or(id))
    }

    /// A user by their stable id.
    pub async fn by_id(&self, id: &str) -> Result<Option<User>, sqlx::Error> {
        sqlx::query(SELECT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    /// A user by username.
    pub async fn by_username(&self, username: &str) -> Result<Option<User>, sqlx::Error> {
        sqlx::query(SELECT_BY_USERNAME)
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    /// The user whose username and password match, if any.
    pub async fn verify(&self, username: &str, password: &str) -> Result<Option<User>, UsersError> {
        let user = self.by_username(username).await?;
        let hash = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.to_string(), |u| u.password_hash.clone());
        let ok = verify_password(password.to_owned(), hash).await?;
        Ok(user.filter(|_| ok))
    }
}

/// What the login form submits.
#[derive(Clone)]
pub struct Credentials {
    /// Login name.
    pub username: String,
    /// Password, in the clear only for as long as the request lasts.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// axum-login's view of [`Users`].
#[derive(Clone, Debug)]
pub struct Backend {
    users: Users,
}

impl Backend {
    /// Wraps the user table.
    pub fn new(users: Users) -> Self {
        Self { users }
    }
}

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = UsersError;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, UsersError> {
        self.users.verify(&creds.username, &creds.password).await
    }

    async fn get_user(&self, user_id: &UserId<Self>) -> Result<Option<User>, UsersError> {
        Ok(self.users.by_id(user_id).await?)
    }
}
