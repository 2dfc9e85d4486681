//! Authentication: JWTs in, an authenticated [`User`](crate::domain::User) out.

pub mod attempts;
pub mod authenticate;
pub mod password;
pub mod token;

pub use attempts::{Admission, LoginAttempts, Outcome};
pub use authenticate::Authenticator;
pub use token::{Claims, IssuedToken, TokenKeys, VerifiedToken};
