//! One handler per route: parse and validate, call the domain, map the result.

use lambda_http::{Body, Request, Response};
use serde::Serialize;
use shared::auth::{password, Admission, Outcome};
use shared::domain::{now_rfc3339, Email, Name, Password, User, UserView};
use shared::http::{json, no_content, source_ip, JsonObject};
use shared::store::NewUser;
use shared::{App, AppError};

/// Registrations refused because the email is taken are counted per source IP; past the limit
/// the IP gets `429` for any email, before any password is hashed (see
/// [`shared::auth::attempts`]), so `409 email_taken` cannot be used to test emails faster.
pub async fn register(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let body = JsonObject::from_request(req)?;
    let email = Email::parse(body.required_str("email")?)?;
    let name = Name::parse(body.required_str("name")?)?;
    let password = Password::parse(body.required_str("password")?)?;
    let reservation = match app
        .login_attempts
        .admit_registration(source_ip(req).unwrap_or(NO_SOURCE_IP))
        .await
    {
        Admission::Allowed(reservation) => reservation,
        Admission::Refused { retry_after } => {
            return Err(AppError::TooManyAttempts { retry_after })
        }
    };
    let registered = create_user(app, email, name, password).await;
    app.login_attempts
        .settle_registration(reservation, matches!(registered, Err(AppError::EmailTaken)))
        .await;
    Ok(json(201, &registered?.view()))
}

async fn create_user(
    app: &App,
    email: Email,
    name: Name,
    password: Password,
) -> Result<User, AppError> {
    let password_hash = password::hash(password).await?;
    let user = User {
        id: app.clock.new_id(),
        email,
        name: name.into_inner(),
        jwt_version: 1,
        revision: 1,
        // The store sets it: one more than a deleted user's, if any.
        registration: 0,
        created_at: now_rfc3339(),
    };
    app.users
        .register(NewUser {
            user,
            password_hash,
        })
        .await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginResponse<'a> {
    token: String,
    token_type: &'static str,
    expires_in: u64,
    user: UserView<'a>,
}

/// The one bucket, counted as if it were one IP, of every login (and registration) whose event
/// names no source IP.
///
/// API Gateway names one in every event it sends, so only a direct invocation (which needs
/// `lambda:InvokeFunction` on the function) can lack it. Sharing a bucket fails closed: such
/// logins are limited together, as strictly as one IP (the pair limit then counts by email
/// alone), so leaving the IP out never buys a guess more. What it costs, that IP-less callers
/// can lock each other out, no client of the API can reach. No IP API Gateway reports can be
/// this string.
const NO_SOURCE_IP: &str = "unknown";

/// An unknown email and a wrong password get the same answer in about the same time: the
/// password is checked against a dummy hash when there is no user. Failed attempts are counted
/// per email and source IP, and per source IP; past the limits the answer is `429` before any
/// password is checked (see [`shared::auth::attempts`]).
pub async fn login(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let body = JsonObject::from_request(req)?;
    let raw_email = body.required_str("email")?;
    let raw_password = body.required_str("password")?;
    // A malformed email or out-of-bounds password cannot belong to anyone: same answer as
    // a wrong one, after the same work.
    let email = Email::parse(raw_email).ok();
    let password = Password::parse(raw_password).ok();
    let counted_as = email.as_ref().map_or_else(
        || raw_email.trim().to_lowercase(),
        |e| e.as_str().to_owned(),
    );
    let reservation = match app
        .login_attempts
        .admit(&counted_as, source_ip(req).unwrap_or(NO_SOURCE_IP))
        .await
    {
        Admission::Allowed(reservation) => reservation,
        Admission::Refused { retry_after } => {
            return Err(AppError::TooManyAttempts { retry_after })
        }
    };
    let checked = check_credentials(app, email.as_ref(), password).await;
    let outcome = match &checked {
        Ok(_) => Outcome::Succeeded,
        Err(AppError::InvalidCredentials) => Outcome::Failed,
        Err(_) => Outcome::Undecided,
    };
    app.login_attempts.settle(reservation, outcome).await;
    let user = checked?;
    let issued = app.auth.keys().issue(&user)?;
    Ok(json(
        200,
        &LoginResponse {
            token: issued.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            user: user.view(),
        },
    ))
}

/// The user whose password this is, or `invalid_credentials`; the same work either way.
async fn check_credentials(
    app: &App,
    email: Option<&Email>,
    password: Option<Password>,
) -> Result<User, AppError> {
    let password_in_bounds = password.is_some();
    let found = match email {
        Some(email) => app.users.credentials(email).await?,
        None => None,
    };
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    let dummy = Password::parse("not-a-real-password")
        .map_err(|_| AppError::Internal("dummy password".into()))?;
    let verified = password::verify(password.unwrap_or(dummy), hash).await?;
    match user {
        Some(user) if verified && password_in_bounds => Ok(user),
        _ => Err(AppError::InvalidCredentials),
    }
}

/// Bumps `jwtVersion`: every token issued to this user so far stops working at once.
pub async fn logout(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    app.users.logout(&user).await?;
    Ok(no_content())
}

pub async fn me(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    Ok(json(200, &user.view()))
}

pub async fn rename(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    let body = JsonObject::from_request(req)?;
    let name = Name::parse(body.required_str("name")?)?;
    let user = app.users.rename(&user, name.into_inner()).await?;
    Ok(json(200, &user.view()))
}

pub async fn delete(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    app.users.delete(&user).await?;
    Ok(no_content())
}
