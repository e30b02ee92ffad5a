//! `edit_settings`: a member changes the group's name and notice; the change
//! must be accepted (else `settings_rejected`), read back (else
//! `settings_not_applied`) and reach every other member's every device by
//! push before the deadline (else `settings_not_propagated`; a push of the
//! change carrying other values is `corrupted`).

use std::time::Instant;

use async_trait::async_trait;

use super::context::{RunContext, Steps};
use super::deliver::watch;
use super::devices::DeviceRef;
use super::kind::{self, KindDef, PublicWords};
use super::run::StepResult;
use crate::client::{Event, GroupSettings};
use crate::outcome::{Operation, Reason};

/// The `edit_settings` kind in the registry.
pub(super) const KIND: KindDef = KindDef {
    name: "edit_settings",
    main_operation: Operation::EditSettings,
    shipped: include_str!("../../probes/edit_settings.yaml"),
    validate: kind::no_rules,
    accounts_needed: kind::one_per_member,
    messages_expected: kind::no_messages,
    delivery_operation: None,
    fresh_group_per_run: true,
    steps: || Box::new(EditSettings),
    public: PublicWords {
        name: "Changing group settings",
        description: "A new group name or notice is saved and everyone in the group sees it.",
    },
};

/// The `edit_settings` kind's steps.
pub(super) struct EditSettings;

#[async_trait]
impl Steps for EditSettings {
    async fn steps(&mut self, cx: &mut RunContext<'_>) -> StepResult<()> {
        let members = cx.devices.members.len();
        let group = cx.create_group(members).await?;
        let before = cx.group_settings();
        let wanted = GroupSettings {
            name: format!("chatprobe {} renamed", cx.tag),
            notice: format!("notice of run {}", cx.tag),
        };
        let started = Instant::now();
        let editor = cx.devices.device(DeviceRef::first(0));
        let editing = editor.edit_settings(&group, &wanted);
        let refused = Reason::SettingsRejected;
        cx.run
            .step_or_refused(Operation::EditSettings, refused, editing)
            .await?;
        let reading = cx.devices.device(DeviceRef::first(0)).read_group(&group);
        let read = cx.run.step(Operation::EditSettings, reading).await?;
        if read.settings != wanted {
            let detail = format!("read back {:?}, set {:?}", read.settings, wanted);
            return Err(cx
                .run
                .fail(Operation::EditSettings, Reason::SettingsNotApplied, detail));
        }
        let others = cx.devices.of_members(1..members);
        let mut seen = vec![(false, false); others.len()];
        let mut altered = 0;
        let deadline = cx.deadline(started);
        let alive = watch(
            cx.devices,
            cx.run,
            &others,
            deadline,
            |recipient, delivered| {
                if let Event::SettingsChanged {
                    group: changed,
                    name,
                    notice,
                } = &delivered.event
                    && *changed == group
                {
                    let name = Change::of(name.as_deref(), &wanted.name, &before.name);
                    let notice = Change::of(notice.as_deref(), &wanted.notice, &before.notice);
                    if name == Change::Altered || notice == Change::Altered {
                        // The change arrived, altered on the way.
                        altered += 1;
                        seen[recipient] = (true, true);
                    }
                    seen[recipient].0 |= name == Change::Wanted;
                    seen[recipient].1 |= notice == Change::Wanted;
                }
                seen[recipient] == (true, true)
            },
        )
        .await;
        if altered > 0 {
            let detail = format!("{altered} pushes of the change carried other settings");
            cx.run
                .fail(Operation::EditSettings, Reason::Corrupted, detail);
        }
        let missed = seen
            .iter()
            .zip(&alive)
            .filter(|(seen, alive)| **alive && **seen != (true, true))
            .count();
        if missed > 0 {
            let detail = format!(
                "{missed} of {} other devices never saw the change",
                others.len()
            );
            cx.run.fail(
                Operation::EditSettings,
                Reason::SettingsNotPropagated,
                detail,
            );
        }
        Ok(())
    }
}

/// What one pushed settings field says, against the values before and after
/// the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Not part of this push, or the value from before the change.
    Absent,
    /// The value the run set.
    Wanted,
    /// Neither: the change, altered.
    Altered,
}

impl Change {
    fn of(pushed: Option<&str>, wanted: &str, before: &str) -> Change {
        match pushed {
            Some(value) if value == wanted => Change::Wanted,
            Some(value) if value != before => Change::Altered,
            _ => Change::Absent,
        }
    }
}
