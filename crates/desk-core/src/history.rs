//! 変更履歴 (L1): what a line of a customer's history says happened. Written by the store
//! in the transaction that makes the change; shown on the customer's page and in the API.

/// What happened to the customer record. Stored as `customer_history.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HistoryAction {
    Created,
    /// One field changed (the line names it, with the old and new value).
    Updated,
    Deleted,
    /// A LINE user was linked to the customer.
    Linked,
    /// A LINE user was unlinked from the customer.
    Unlinked,
    /// A LINE passcode was issued for the customer (the code itself is not recorded).
    PasscodeIssued,
}

impl HistoryAction {
    pub const ALL: [HistoryAction; 6] = [
        Self::Created,
        Self::Updated,
        Self::Deleted,
        Self::Linked,
        Self::Unlinked,
        Self::PasscodeIssued,
    ];

    /// The database and API form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Linked => "linked",
            Self::Unlinked => "unlinked",
            Self::PasscodeIssued => "passcode_issued",
        }
    }
}

/// How a link or unlink came about. Stored as `customer_history.via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkVia {
    /// An agent linked or unlinked by hand.
    Agent,
    /// The LINE user sent the customer's passcode (an unlink: the user was linked elsewhere).
    Passcode,
    /// The customer was deleted.
    Deleted,
}

impl LinkVia {
    pub const ALL: [LinkVia; 3] = [Self::Agent, Self::Passcode, Self::Deleted];

    /// The database and API form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Passcode => "passcode",
            Self::Deleted => "deleted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for a in HistoryAction::ALL {
            assert_eq!(a.as_str().parse::<HistoryAction>(), Ok(a));
        }
        for v in LinkVia::ALL {
            assert_eq!(LinkVia::try_from(v.as_str().to_owned()), Ok(v));
        }
        assert!("renamed".parse::<HistoryAction>().is_err());
    }
}
