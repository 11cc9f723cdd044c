//! The bank accounts of the reference notes (section 7's naive-replication example, section 8's
//! linearizability discussion): `setBalance`, `getBalance` and a transfer between accounts.
//!
//! Accounts are named by strings and hold whole units (`u64`, no negative balances). An account
//! exists once `setBalance` named it, or from the start when the bank is built with
//! [`Bank::with_accounts`] (the notes' "initial balance of x and y is 0"). Refusals (unknown
//! account, insufficient funds, a credit that would overflow) are outputs and change nothing.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{decode_snapshot, encode_snapshot, SnapshotError, StateMachine};

/// The kind byte of bank snapshots.
pub const BANK_SNAPSHOT_KIND: u8 = 2;

/// An operation on the bank.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BankOp {
    /// `setBalance(account, amount)`: creates the account or overwrites its balance.
    SetBalance {
        /// The account.
        account: String,
        /// The new balance.
        amount: u64,
    },
    /// `getBalance(account)`. Read-only.
    GetBalance {
        /// The account.
        account: String,
    },
    /// Moves `amount` from `from` to `to`, atomically, if both exist and `from` holds enough.
    /// A transfer from an account to itself changes nothing (when it holds `amount`).
    Transfer {
        /// The debited account.
        from: String,
        /// The credited account.
        to: String,
        /// How much.
        amount: u64,
    },
}

impl BankOp {
    /// `SetBalance { account, amount }`.
    pub fn set(account: impl Into<String>, amount: u64) -> Self {
        BankOp::SetBalance {
            account: account.into(),
            amount,
        }
    }

    /// `GetBalance { account }`.
    pub fn get(account: impl Into<String>) -> Self {
        BankOp::GetBalance {
            account: account.into(),
        }
    }

    /// `Transfer { from, to, amount }`.
    pub fn transfer(from: impl Into<String>, to: impl Into<String>, amount: u64) -> Self {
        BankOp::Transfer {
            from: from.into(),
            to: to.into(),
            amount,
        }
    }
}

/// What a bank operation returns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BankOutput {
    /// `setBalance` took effect.
    BalanceSet,
    /// `getBalance`'s result.
    Balance(u64),
    /// The transfer took effect.
    Transferred,
    /// The account does not exist; nothing changed.
    UnknownAccount {
        /// The first unknown account named (`from` before `to`).
        account: String,
    },
    /// The debited account holds less than the amount; nothing changed.
    InsufficientFunds {
        /// The debited account.
        account: String,
        /// Its balance.
        balance: u64,
        /// The amount asked for.
        requested: u64,
    },
    /// Crediting would exceed `u64::MAX`; nothing changed.
    Overflow {
        /// The credited account.
        account: String,
    },
}

/// The bank state machine: account name to balance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Bank {
    accounts: BTreeMap<String, u64>,
}

impl Bank {
    /// A bank with no account.
    pub fn new() -> Self {
        Self::default()
    }

    /// A bank whose `accounts` exist with balance 0.
    pub fn with_accounts<I, S>(accounts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Bank {
            accounts: accounts.into_iter().map(|a| (a.into(), 0)).collect(),
        }
    }

    /// The balance of `account`, if it exists (a local read, outside any replication).
    pub fn balance(&self, account: &str) -> Option<u64> {
        self.accounts.get(account).copied()
    }

    /// The sum of all balances (conserved by transfers; `u128`, so it cannot overflow).
    pub fn total(&self) -> u128 {
        self.accounts.values().map(|&b| u128::from(b)).sum()
    }

    /// What `op` returns in this state; [`StateMachine::apply`] then makes the change the
    /// output reports (one decision, shared with [`StateMachine::preview`]).
    fn outcome(&self, op: &BankOp) -> BankOutput {
        match op {
            BankOp::SetBalance { .. } => BankOutput::BalanceSet,
            BankOp::GetBalance { account } => match self.accounts.get(account) {
                Some(&b) => BankOutput::Balance(b),
                None => BankOutput::UnknownAccount {
                    account: account.clone(),
                },
            },
            BankOp::Transfer { from, to, amount } => {
                let Some(&from_balance) = self.accounts.get(from) else {
                    return BankOutput::UnknownAccount {
                        account: from.clone(),
                    };
                };
                let Some(&to_balance) = self.accounts.get(to) else {
                    return BankOutput::UnknownAccount {
                        account: to.clone(),
                    };
                };
                if from_balance < *amount {
                    return BankOutput::InsufficientFunds {
                        account: from.clone(),
                        balance: from_balance,
                        requested: *amount,
                    };
                }
                if from != to && to_balance.checked_add(*amount).is_none() {
                    return BankOutput::Overflow {
                        account: to.clone(),
                    };
                }
                BankOutput::Transferred
            }
        }
    }
}

impl StateMachine for Bank {
    type Operation = BankOp;
    type Output = BankOutput;

    fn apply(&mut self, op: &BankOp) -> BankOutput {
        let output = self.outcome(op);
        match (op, &output) {
            (BankOp::SetBalance { account, amount }, _) => {
                self.accounts.insert(account.clone(), *amount);
            }
            (BankOp::Transfer { from, to, amount }, BankOutput::Transferred) if from != to => {
                // `outcome` checked that both exist, the debit is covered and the credit fits.
                if let Some(balance) = self.accounts.get_mut(from) {
                    *balance -= amount;
                }
                if let Some(balance) = self.accounts.get_mut(to) {
                    *balance += amount;
                }
            }
            _ => {}
        }
        output
    }

    fn preview(&self, op: &BankOp) -> Option<BankOutput> {
        Some(self.outcome(op))
    }

    fn is_read_only(op: &BankOp) -> bool {
        matches!(op, BankOp::GetBalance { .. })
    }

    fn keys(op: &BankOp) -> Vec<String> {
        match op {
            BankOp::SetBalance { account, .. } | BankOp::GetBalance { account } => {
                vec![account.clone()]
            }
            BankOp::Transfer { from, to, .. } => vec![from.clone(), to.clone()],
        }
    }

    fn snapshot(&self) -> Bytes {
        encode_snapshot(BANK_SNAPSHOT_KIND, &self.accounts)
    }

    fn restore(bytes: &[u8]) -> Result<Self, SnapshotError> {
        Ok(Bank {
            accounts: decode_snapshot(BANK_SNAPSHOT_KIND, bytes)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn set_get_transfer() {
        let mut bank = Bank::with_accounts(["x", "y"]);
        assert_eq!(bank.apply(&BankOp::get("x")), BankOutput::Balance(0));
        assert_eq!(bank.apply(&BankOp::set("x", 10)), BankOutput::BalanceSet);
        assert_eq!(
            bank.apply(&BankOp::transfer("x", "y", 4)),
            BankOutput::Transferred
        );
        assert_eq!(bank.balance("x"), Some(6));
        assert_eq!(bank.balance("y"), Some(4));
        assert_eq!(
            bank.apply(&BankOp::transfer("x", "x", 6)),
            BankOutput::Transferred
        );
        assert_eq!(bank.balance("x"), Some(6));
        assert_eq!(bank.total(), 10);
    }

    #[test]
    fn refusals_change_nothing() {
        let mut bank = Bank::with_accounts(["x", "y"]);
        bank.apply(&BankOp::set("x", 5));
        let before = bank.clone();
        assert_eq!(
            bank.apply(&BankOp::transfer("x", "y", 6)),
            BankOutput::InsufficientFunds {
                account: "x".into(),
                balance: 5,
                requested: 6
            }
        );
        assert_eq!(
            bank.apply(&BankOp::transfer("z", "y", 1)),
            BankOutput::UnknownAccount {
                account: "z".into()
            }
        );
        assert_eq!(
            bank.apply(&BankOp::transfer("x", "z", 1)),
            BankOutput::UnknownAccount {
                account: "z".into()
            }
        );
        assert_eq!(
            bank.apply(&BankOp::get("z")),
            BankOutput::UnknownAccount {
                account: "z".into()
            }
        );
        bank.apply(&BankOp::set("y", u64::MAX));
        let before_overflow = bank.clone();
        assert_eq!(
            bank.apply(&BankOp::transfer("x", "y", 1)),
            BankOutput::Overflow {
                account: "y".into()
            }
        );
        assert_eq!(bank, before_overflow);
        assert_eq!(before.balance("x"), bank.balance("x"));
    }

    #[test]
    fn read_only_and_keys() {
        assert!(Bank::is_read_only(&BankOp::get("x")));
        assert!(!Bank::is_read_only(&BankOp::set("x", 1)));
        assert!(!Bank::is_read_only(&BankOp::transfer("x", "y", 1)));
        assert_eq!(Bank::keys(&BankOp::transfer("x", "y", 1)), vec!["x", "y"]);
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let mut bank = Bank::with_accounts(["x", "y"]);
        bank.apply(&BankOp::set("x", 7));
        let snap = bank.snapshot();
        assert_eq!(Bank::restore(&snap).unwrap(), bank);
        let mut bad = snap.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(Bank::restore(&bad), Err(SnapshotError::Checksum));
        assert!(Bank::restore(&snap[..snap.len() - 3]).is_err());
        let kv = crate::state_machine::kv::KvStore::new().snapshot();
        assert!(matches!(
            Bank::restore(&kv),
            Err(SnapshotError::WrongMachine { .. })
        ));
    }

    fn arb_op() -> impl Strategy<Value = BankOp> {
        let acct = prop::sample::select(vec!["x", "y", "z"]).prop_map(str::to_owned);
        prop_oneof![
            (acct.clone(), 0u64..20).prop_map(|(a, n)| BankOp::SetBalance {
                account: a,
                amount: n
            }),
            acct.clone().prop_map(|a| BankOp::GetBalance { account: a }),
            (acct.clone(), acct, 0u64..20).prop_map(|(f, t, n)| BankOp::Transfer {
                from: f,
                to: t,
                amount: n
            }),
        ]
    }

    proptest! {
        /// Transfers conserve the total; replicas and restored snapshots agree.
        #[test]
        fn transfers_conserve_and_replicas_agree(ops in prop::collection::vec(arb_op(), 0..60)) {
            let mut a = Bank::with_accounts(["x", "y"]);
            let mut b = Bank::restore(&a.snapshot()).unwrap();
            for op in &ops {
                let total = a.total();
                let out = a.apply(op);
                prop_assert_eq!(&out, &b.apply(op));
                if matches!(op, BankOp::Transfer { .. }) {
                    prop_assert_eq!(total, a.total());
                }
            }
            prop_assert_eq!(Bank::restore(&a.snapshot()).unwrap(), b);
        }

        /// `preview` answers what `apply` will answer and changes nothing, near `u64::MAX`
        /// too (where a transfer overflows).
        #[test]
        fn preview_is_apply_without_the_change(
            ops in prop::collection::vec(arb_op(), 0..60),
            near_max in any::<bool>(),
        ) {
            let mut bank = Bank::with_accounts(["x", "y"]);
            if near_max {
                bank.apply(&BankOp::SetBalance { account: "z".into(), amount: u64::MAX - 5 });
            }
            for op in &ops {
                let before = bank.clone();
                let previewed = bank.preview(op);
                prop_assert_eq!(&before, &bank);
                prop_assert_eq!(previewed, Some(bank.apply(op)));
            }
        }
    }
}
