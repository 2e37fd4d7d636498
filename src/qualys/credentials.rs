//! Qualys credentials, held so that they cannot leak: passwords and tokens
//! are [`SecretString`]s, which print as `[REDACTED]` through `Debug`, have
//! no `Display`, are zeroed when dropped, and are only readable through
//! [`ExposeSecret`] at the one place that sends them.

use std::path::Path;

#[cfg(test)]
use secrecy::ExposeSecret;
use secrecy::SecretString;

/// How to authenticate to the gateway.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Username and password, exchanged for a JWT at `/auth`.
    Password {
        /// The API user.
        username: String,
        /// Its password.
        password: SecretString,
    },
    /// A JWT obtained elsewhere; it cannot be refreshed.
    Token(SecretString),
}

/// Why credentials could not be found.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A credentials file could not be read.
    #[error("cannot read {what} from {path}: {source}")]
    File {
        /// Which credential.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Nothing was given.
    #[error(
        "no Qualys credentials: set QUALYS_USERNAME and QUALYS_PASSWORD, pass --username-file and \
         --password-file (a mounted Secret), or set QUALYS_ACCESS_TOKEN"
    )]
    Missing,
    /// Only half was given.
    #[error("a Qualys {0} was given without the {1}")]
    Half(&'static str, &'static str),
}

/// Where credentials may come from, in order of precedence: files, then the
/// environment's username and password, then a ready token.
#[derive(Debug, Default, Clone)]
pub struct Sources<'a> {
    /// `--username-file`.
    pub username_file: Option<&'a Path>,
    /// `--password-file`.
    pub password_file: Option<&'a Path>,
    /// `QUALYS_USERNAME`.
    pub username: Option<String>,
    /// `QUALYS_PASSWORD`.
    pub password: Option<String>,
    /// `QUALYS_ACCESS_TOKEN`.
    pub token: Option<String>,
}

impl Sources<'_> {
    /// Resolves the credentials.
    pub fn resolve(self) -> Result<Credentials, CredentialsError> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read_to_string(path)
                .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|source| CredentialsError::File { what, path: path.display().to_string(), source })
        };
        let username = match self.username_file {
            Some(path) => Some(read("username", path)?),
            None => self.username.filter(|u| !u.is_empty()),
        };
        let password = match self.password_file {
            Some(path) => Some(read("password", path)?),
            None => self.password.filter(|p| !p.is_empty()),
        };
        match (username, password) {
            (Some(username), Some(password)) => Ok(Credentials::Password { username, password: password.into() }),
            (Some(_), None) => Err(CredentialsError::Half("username", "password")),
            (None, Some(_)) => Err(CredentialsError::Half("password", "username")),
            (None, None) => match self.token.filter(|t| !t.trim().is_empty()) {
                Some(token) => Ok(Credentials::Token(token.trim().into())),
                None => Err(CredentialsError::Missing),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let credentials = Credentials::Password { username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{credentials:?}").contains("hunter2"));
        let token = Credentials::Token("eyJhbGciOi".into());
        assert!(!format!("{token:?}").contains("eyJ"));
    }

    #[test]
    fn files_win_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let (user, pass) = (dir.path().join("username"), dir.path().join("password"));
        std::fs::write(&user, "file-user\n").unwrap();
        std::fs::write(&pass, "file-pass\n").unwrap();
        let sources = Sources {
            username_file: Some(&user),
            password_file: Some(&pass),
            username: Some("env-user".into()),
            password: Some("env-pass".into()),
            token: None,
        };
        let Credentials::Password { username, password } = sources.resolve().unwrap() else { panic!() };
        assert_eq!((username.as_str(), password.expose_secret()), ("file-user", "file-pass"));
    }

    #[test]
    fn half_or_nothing_is_an_error() {
        let half = Sources { username: Some("u".into()), ..Sources::default() };
        assert!(matches!(half.resolve(), Err(CredentialsError::Half("username", "password"))));
        assert!(matches!(Sources::default().resolve(), Err(CredentialsError::Missing)));
        let token = Sources { token: Some(" jwt ".into()), ..Sources::default() };
        let Credentials::Token(token) = token.resolve().unwrap() else { panic!("not a token") };
        assert_eq!(token.expose_secret(), "jwt");
    }
}
