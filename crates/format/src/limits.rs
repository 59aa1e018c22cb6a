//! Limits on the texts a user or a client supplies that end up in the repository (a
//! snapshot's description, ticket and tags) or in the daemon's state: the CLI, the engine and
//! the daemon check the same numbers, so a text refused by one is refused by all.
//!
//! ```
//! use backstop_format::limits::{self, MAX_DESCRIPTION_BYTES};
//!
//! assert!(limits::check_snapshot_texts(Some("before the stock count"), None, &[]).is_ok());
//! let long = "x".repeat(MAX_DESCRIPTION_BYTES + 1);
//! let e = limits::check_snapshot_texts(Some(&long), None, &[]).unwrap_err();
//! assert_eq!(e.to_string(), "the description is 4097 bytes long; at most 4096 bytes are accepted");
//! ```

/// A snapshot's description: a few sentences.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// A change ticket ("PO-1042").
pub const MAX_TICKET_BYTES: usize = 256;
/// One tag.
pub const MAX_TAG_BYTES: usize = 256;
/// Tags of one snapshot.
pub const MAX_TAGS: usize = 32;
/// A name a client sends: a source, a snapshot spec, a user or token name at login.
pub const MAX_NAME_BYTES: usize = 256;

/// A text over its limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A text is longer than allowed.
    #[error("the {what} is {len} bytes long; at most {max} bytes are accepted")]
    TooLong {
        /// What the text is ("description", "ticket", "tag", ...).
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A list has more entries than allowed.
    #[error("{count} {what} were given; at most {max} are accepted")]
    TooMany {
        /// What the entries are ("tags").
        what: &'static str,
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// `Ok` if `text` is at most `max` bytes long.
pub fn check_text(what: &'static str, text: &str, max: usize) -> Result<(), LimitError> {
    if text.len() > max {
        return Err(LimitError::TooLong {
            what,
            len: text.len(),
            max,
        });
    }
    Ok(())
}

/// Checks what a snapshot records about itself: description, ticket and tags.
pub fn check_snapshot_texts(
    description: Option<&str>,
    ticket: Option<&str>,
    tags: &[String],
) -> Result<(), LimitError> {
    if let Some(d) = description {
        check_text("description", d, MAX_DESCRIPTION_BYTES)?;
    }
    if let Some(t) = ticket {
        check_text("ticket", t, MAX_TICKET_BYTES)?;
    }
    if tags.len() > MAX_TAGS {
        return Err(LimitError::TooMany {
            what: "tags",
            count: tags.len(),
            max: MAX_TAGS,
        });
    }
    for t in tags {
        check_text("tag", t, MAX_TAG_BYTES)?;
    }
    Ok(())
}
