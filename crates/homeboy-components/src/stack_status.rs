//! `stack status`: for every entry of a stack, whether it is already applied to the target (its commit is
//! an ancestor of the target, or every one of its patches since the base has an equivalent in the target:
//! cherry-picked), pending (it would merge cleanly), or would conflict (an in-memory `git merge-tree
//! --write-tree`, naming the conflicting files), plus how far it is ahead of and behind the target. A
//! revision the checkout does not have is reported as `missing`. Nothing in the checkout changes.

use homeboy_config::stacks::Stack;

use crate::ComponentError;
use crate::git::Checkout;

/// A stack's status and its entries' states: the contract's types.
pub use homeboy_api::components::{EntryState, EntryStatus, StackStatus};

/// The status of `stack` in `checkout`.
pub fn status(checkout: &Checkout, stack: &Stack) -> Result<StackStatus, ComponentError> {
    let resolve = |rev: &str| {
        checkout
            .resolve(rev)?
            .ok_or_else(|| ComponentError::UnknownRevision {
                rev: rev.to_string(),
            })
    };
    let base_sha = resolve(&stack.base)?;
    let target_sha = resolve(&stack.target)?;
    let mut entries = Vec::new();
    for (index, entry) in stack.entries.iter().enumerate() {
        let rev = entry.rev().to_string();
        let mut status = EntryStatus {
            index,
            title: entry.title.clone(),
            rev: rev.clone(),
            sha: None,
            state: EntryState::Missing,
            ahead: None,
            behind: None,
            conflicts: Vec::new(),
        };
        let Some(sha) = checkout.resolve(&rev)? else {
            entries.push(status);
            continue;
        };
        let (behind, ahead) = checkout.behind_ahead(&target_sha, &sha)?;
        status.ahead = Some(ahead);
        status.behind = Some(behind);
        status.state = if ahead == 0
            || checkout.is_ancestor(&sha, &target_sha)?
            || checkout.patches_applied(&target_sha, &sha, &base_sha)?
        {
            EntryState::Applied
        } else {
            let conflicts = checkout.merge_conflicts(&target_sha, &sha)?;
            if conflicts.is_empty() {
                EntryState::Pending
            } else {
                status.conflicts = conflicts;
                EntryState::Conflict
            }
        };
        status.sha = Some(sha);
        entries.push(status);
    }
    let count = |state: EntryState| entries.iter().filter(|e| e.state == state).count();
    Ok(StackStatus {
        stack_id: stack.id.clone(),
        component_id: stack.component.clone(),
        base: stack.base.clone(),
        base_sha,
        target: stack.target.clone(),
        target_sha,
        applied: count(EntryState::Applied),
        pending: count(EntryState::Pending),
        conflict: count(EntryState::Conflict),
        missing: count(EntryState::Missing),
        entries,
    })
}
