//! Access reviews: a guest stays as long as someone vouches for them.
//!
//! A policy with a review interval (`review_days`) has its guests' sponsors asked, every so
//! many days, whether the guest still needs access: "keep <name> for another N days" or "end
//! access now". The first answer wins; an unanswered review is reminded once; at the deadline
//! the policy's default (`on_no_answer`: end or keep) applies. With `access_days` too, the
//! review comes before access ends, and a "keep" extends the access.
//!
//! A guest's reviews are a few properties of its record ([`Reviews`]); this module decides
//! from them, the policy's [`Schedule`] and "now" what the timer does next ([`next_step`]) and
//! what an answer does ([`answer`]). It never removes anyone: an ended review only marks the
//! record, and the cleanup (`core::cleanup`) warns the guest and disables it through its own
//! path, with every safeguard that has (the caps, the exclusion group, the dry run, the
//! re-check against the directory).
//!
//! ```text
//!   period ──(due − answer window)──> open: sponsors mailed ──(reminder days)──> reminded
//!   open ──keep (a sponsor, an admin, or the default)──> new period of N days from the answer
//!   open ──end  (a sponsor, an admin, or the default)──> ended: the cleanup takes it from there
//! ```

use time::{Duration, OffsetDateTime};

use super::policy::OnNoAnswer;

/// How a guest's policy reviews it (interval and default, from the policy) and how long its
/// sponsors have to answer (from the settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Days between reviews: a "keep" keeps the guest this long.
    pub interval_days: u32,
    pub on_no_answer: OnNoAnswer,
    /// Days the sponsors have to answer (`REVIEW_ANSWER_DAYS`).
    pub answer_days: u32,
    /// Days after which an unanswered review is reminded once (`REVIEW_REMINDER_DAYS`; 0: none).
    pub reminder_days: u32,
}

impl Schedule {
    /// How long before the end of a period its review opens: the answer days, but never more
    /// than half the interval (a review must not open before the previous one is answered),
    /// and at least a day.
    pub fn window(&self) -> Duration {
        let half = i64::from(self.interval_days) * 12;
        let wanted = i64::from(self.answer_days) * 24;
        Duration::hours(wanted.min(half).max(24))
    }

    fn interval(&self) -> Duration {
        Duration::days(i64::from(self.interval_days))
    }
}

/// A review waiting for an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Open {
    pub opened_at: OffsetDateTime,
    /// After this, the policy's default applies.
    pub deadline: OffsetDateTime,
    pub reminded: bool,
}

/// Who answered a review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decider {
    /// A sponsor, by identity key (from a personal link).
    Sponsor(String),
    /// An administrator, from the command line (`handler guests review`).
    Operator(String),
    /// Nobody by the deadline: the policy's `on_no_answer`.
    Default,
}

impl Decider {
    /// `sponsor:<key>`, `operator:<name>`, `default`: how it is stored.
    pub fn encode(&self) -> String {
        match self {
            Decider::Sponsor(key) => format!("sponsor:{key}"),
            Decider::Operator(name) => format!("operator:{name}"),
            Decider::Default => "default".into(),
        }
    }

    pub fn decode(text: &str) -> Option<Decider> {
        match text.split_once(':') {
            Some(("sponsor", key)) if !key.is_empty() => Some(Decider::Sponsor(key.into())),
            Some(("operator", name)) => Some(Decider::Operator(name.into())),
            None if text == "default" => Some(Decider::Default),
            _ => None,
        }
    }

    /// The person, if a person decided (for "already answered by ...").
    pub fn person(&self) -> Option<&str> {
        match self {
            Decider::Sponsor(who) | Decider::Operator(who) => Some(who),
            Decider::Default => None,
        }
    }
}

/// An answer to a review, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub keep: bool,
    pub by: Decider,
    pub at: OffsetDateTime,
}

/// A guest's reviews, as its record holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reviews {
    /// The number of the current (or last) review: its links name it, so the link of an
    /// earlier review decides nothing in a later one.
    pub round: u32,
    /// When the current period ends: the deadline of the next review. `None`: not scheduled
    /// (never reviewed yet, or access ended).
    pub due_at: Option<OffsetDateTime>,
    pub open: Option<Open>,
    pub last: Option<Decision>,
}

impl Reviews {
    /// When access was last ended by a review, unless kept since: what the cleanup acts on.
    pub fn ended_at(&self) -> Option<OffsetDateTime> {
        self.last.as_ref().filter(|d| !d.keep).map(|d| d.at)
    }

    /// The round a link names: the round's number modulo 256 (rounds are weeks apart, and a
    /// link also expires with its review).
    pub fn link_stage(round: u32) -> u8 {
        (round % 256) as u8
    }
}

/// What the record says of the guest besides its reviews.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    pub invited_at: OffsetDateTime,
    /// When the cleanup's stage last changed (a restore by an admin starts a new life).
    pub since: OffsetDateTime,
    pub access_ends_at: Option<OffsetDateTime>,
    /// Active in the cleanup's lifecycle and the portal's own guest: reviews open only for
    /// such guests.
    pub active: bool,
    /// Disabled or deleted: an open review of such a guest is closed unanswered.
    pub gone: bool,
}

/// What the timer does with a guest's reviews now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Nothing,
    /// Record when the first review is due (a guest just invited, one invited before its
    /// policy reviewed, or one an admin restored after an ended review).
    Schedule {
        due_at: OffsetDateTime,
    },
    /// Ask the sponsors: the next round, answered by `deadline`.
    Open {
        deadline: OffsetDateTime,
    },
    /// Remind the sponsors of the open review, once.
    Remind,
    /// Nobody answered by the deadline: the policy's default.
    Default(OnNoAnswer),
    /// The open review of a guest that is gone or no longer reviewed: closed unanswered.
    Close,
}

/// The shortest time sponsors get to answer a review that opens late (after its due date:
/// the timer was stopped, or a policy started reviewing guests whose access ends soon).
const LATE_ANSWER: Duration = Duration::days(1);

/// When the first review of a guest whose reviews start at `start` is due: the first end of
/// a period (`start` + k × interval) whose review opens after `now`, so guests of a policy that
/// just started reviewing are spread over the interval rather than asked all at once; and
/// never after the access period ends (if it has not yet).
pub fn first_due(
    start: OffsetDateTime,
    access_ends_at: Option<OffsetDateTime>,
    schedule: &Schedule,
    now: OffsetDateTime,
) -> OffsetDateTime {
    let interval = schedule.interval();
    let mut due = start + interval;
    if due - schedule.window() <= now {
        let behind = (now + schedule.window() - due).whole_seconds();
        let periods = behind / interval.whole_seconds() + 1;
        due += interval * periods as i32;
    }
    match access_ends_at {
        Some(end) if end > now && end < due => end,
        _ => due,
    }
}

/// The next step of a guest's reviews: `schedule` is its policy's (`None`: the policy is gone
/// or does not review).
pub fn next_step(
    r: &Reviews,
    schedule: Option<&Schedule>,
    guest: &Standing,
    now: OffsetDateTime,
) -> Step {
    if let Some(open) = r.open {
        let Some(schedule) = schedule.filter(|_| !guest.gone) else {
            return Step::Close;
        };
        if now >= open.deadline {
            return Step::Default(schedule.on_no_answer);
        }
        let remind_at = open.opened_at + Duration::days(i64::from(schedule.reminder_days));
        if schedule.reminder_days > 0 && !open.reminded && now >= remind_at {
            return Step::Remind;
        }
        return Step::Nothing;
    }
    let Some(schedule) = schedule else {
        return Step::Nothing;
    };
    if !guest.active {
        return Step::Nothing;
    }
    // Access ended by a review: nothing more to ask, unless an admin has restored the guest
    // since (then its reviews start again from the restore).
    let restarted = match r.last.as_ref() {
        Some(d) if !d.keep => {
            if guest.since <= d.at {
                return Step::Nothing;
            }
            true
        }
        _ => false,
    };
    let due = match r.due_at {
        Some(due) if !restarted => due,
        _ => {
            let start = if restarted {
                guest.since
            } else {
                guest.invited_at
            };
            let due = first_due(start, guest.access_ends_at, schedule, now);
            if due - schedule.window() > now {
                return Step::Schedule { due_at: due };
            }
            due
        }
    };
    if now >= due - schedule.window() {
        Step::Open {
            deadline: due.max(now + LATE_ANSWER),
        }
    } else {
        Step::Nothing
    }
}

/// The record after opening a review due at `deadline`.
pub fn opened(r: &Reviews, deadline: OffsetDateTime, now: OffsetDateTime) -> Reviews {
    Reviews {
        round: r.round + 1,
        due_at: Some(deadline),
        open: Some(Open {
            opened_at: now,
            deadline,
            reminded: false,
        }),
        last: r.last.clone(),
    }
}

/// Why an answer was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The review the link was for is answered already (or closed): the last answer, if any.
    Answered(Option<Decision>),
}

/// What an answer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    pub reviews: Reviews,
    /// The guest's access end after the answer (a keep extends it to the new period's end).
    pub access_ends_at: Option<OffsetDateTime>,
    /// When the next review is due (keep), if any.
    pub next_due: Option<OffsetDateTime>,
}

/// Records an answer: `round` is the review a link was for (`None`: an admin, who may answer
/// whether or not a review is open). The answer's time is never before the review opened (the
/// timer's clock and a web instance's may differ); the default's is the deadline. A keep starts
/// a period of `interval_days` (the policy's review interval) from then and extends the access
/// to its end; an end closes the reviews.
pub fn answer(
    r: &Reviews,
    interval_days: u32,
    round: Option<u8>,
    keep: bool,
    by: Decider,
    at: OffsetDateTime,
    access_ends_at: Option<OffsetDateTime>,
) -> Result<Answered, Refused> {
    let at = match (r.open, round) {
        (Some(open), Some(stage)) if stage == Reviews::link_stage(r.round) => {
            if by == Decider::Default {
                open.deadline
            } else {
                at.max(open.opened_at)
            }
        }
        (_, Some(_)) => return Err(Refused::Answered(r.last.clone())),
        (Some(open), None) => at.max(open.opened_at),
        (None, None) => at,
    };
    let next_due = keep.then(|| at + Duration::days(i64::from(interval_days)));
    Ok(Answered {
        reviews: Reviews {
            round: r.round,
            due_at: next_due,
            open: None,
            last: Some(Decision { keep, by, at }),
        },
        access_ends_at: match next_due {
            Some(due) => access_ends_at.map(|end| end.max(due)),
            None => access_ends_at,
        },
        next_due,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 10:00 UTC);

    fn d(n: i64) -> Duration {
        Duration::days(n)
    }

    fn schedule(on_no_answer: OnNoAnswer) -> Schedule {
        Schedule {
            interval_days: 90,
            on_no_answer,
            answer_days: 14,
            reminder_days: 7,
        }
    }

    fn guest(invited: OffsetDateTime) -> Standing {
        Standing {
            invited_at: invited,
            since: invited,
            access_ends_at: None,
            active: true,
            gone: false,
        }
    }

    fn open_at(opened: OffsetDateTime, deadline: OffsetDateTime) -> Reviews {
        Reviews {
            round: 1,
            due_at: Some(deadline),
            open: Some(Open {
                opened_at: opened,
                deadline,
                reminded: false,
            }),
            last: None,
        }
    }

    #[test]
    fn the_window_is_the_answer_days_but_at_most_half_the_interval_and_at_least_a_day() {
        let mut s = schedule(OnNoAnswer::End);
        assert_eq!(s.window(), d(14));
        s.interval_days = 10;
        assert_eq!(s.window(), d(5));
        s.answer_days = 0;
        assert_eq!(s.window(), d(1));
        s.interval_days = 1;
        s.answer_days = 14;
        assert_eq!(s.window(), d(1));
    }

    #[test]
    fn a_new_guest_is_scheduled_one_interval_after_its_invitation() {
        let s = schedule(OnNoAnswer::End);
        let step = next_step(&Reviews::default(), Some(&s), &guest(NOW), NOW);
        assert_eq!(
            step,
            Step::Schedule {
                due_at: NOW + d(90)
            }
        );
    }

    #[test]
    fn a_review_opens_the_answer_window_before_its_period_ends() {
        let s = schedule(OnNoAnswer::End);
        let invited = NOW - d(90);
        let r = Reviews {
            due_at: Some(NOW + d(14) + Duration::hours(1)),
            ..Reviews::default()
        };
        assert_eq!(next_step(&r, Some(&s), &guest(invited), NOW), Step::Nothing);
        let r = Reviews {
            due_at: Some(NOW + d(14)),
            ..Reviews::default()
        };
        assert_eq!(
            next_step(&r, Some(&s), &guest(invited), NOW),
            Step::Open {
                deadline: NOW + d(14)
            }
        );
        let opened = opened(&r, NOW + d(14), NOW);
        assert_eq!(opened.round, 1);
        assert_eq!(opened.open.unwrap().opened_at, NOW);
    }

    #[test]
    fn with_access_days_the_review_comes_before_access_ends_and_keep_extends_it() {
        let s = schedule(OnNoAnswer::End);
        let mut g = guest(NOW);
        g.access_ends_at = Some(NOW + d(30));
        // The period ends with the access, 30 days in, not 90.
        assert_eq!(
            next_step(&Reviews::default(), Some(&s), &g, NOW),
            Step::Schedule {
                due_at: NOW + d(30)
            }
        );
        let r = opened(&Reviews::default(), NOW + d(30), NOW + d(16));
        let kept = answer(
            &r,
            s.interval_days,
            Some(1),
            true,
            Decider::Sponsor("boss@contoso.example".into()),
            NOW + d(20),
            g.access_ends_at,
        )
        .unwrap();
        assert_eq!(kept.next_due, Some(NOW + d(110)), "another 90 days");
        assert_eq!(kept.access_ends_at, Some(NOW + d(110)), "access extended");
        // A longer access period is never shortened by a keep.
        let kept = answer(
            &r,
            s.interval_days,
            Some(1),
            true,
            Decider::Default,
            NOW + d(20),
            Some(NOW + d(400)),
        )
        .unwrap();
        assert_eq!(kept.access_ends_at, Some(NOW + d(400)));
    }

    #[test]
    fn guests_of_a_policy_that_starts_reviewing_are_spread_over_the_interval() {
        let s = schedule(OnNoAnswer::End);
        for (invited_days_ago, due_in) in [(400, 50), (365, 85), (80, 10 + 90), (10, 80)] {
            let due = first_due(NOW - d(invited_days_ago), None, &s, NOW);
            assert_eq!(due, NOW + d(due_in), "invited {invited_days_ago} days ago");
            assert!(due - s.window() > NOW, "never opens at once");
        }
        // An access period that ends before that still brings the review forward.
        assert_eq!(
            first_due(NOW - d(400), Some(NOW + d(5)), &s, NOW),
            NOW + d(5)
        );
        // One that is over already does not (the cleanup is on it).
        assert_eq!(
            first_due(NOW - d(400), Some(NOW - d(5)), &s, NOW),
            NOW + d(50)
        );
    }

    #[test]
    fn an_open_review_is_reminded_once_then_the_default_applies_at_the_deadline() {
        for default in [OnNoAnswer::End, OnNoAnswer::Keep] {
            let s = schedule(default);
            let g = guest(NOW - d(100));
            let mut r = open_at(NOW, NOW + d(14));
            assert_eq!(next_step(&r, Some(&s), &g, NOW + d(6)), Step::Nothing);
            assert_eq!(next_step(&r, Some(&s), &g, NOW + d(7)), Step::Remind);
            r.open.as_mut().unwrap().reminded = true;
            assert_eq!(next_step(&r, Some(&s), &g, NOW + d(13)), Step::Nothing);
            assert_eq!(
                next_step(&r, Some(&s), &g, NOW + d(14)),
                Step::Default(default)
            );
        }
        let mut quiet = schedule(OnNoAnswer::End);
        quiet.reminder_days = 0;
        let r = open_at(NOW, NOW + d(14));
        assert_eq!(
            next_step(&r, Some(&quiet), &guest(NOW), NOW + d(13)),
            Step::Nothing,
            "no reminders when turned off"
        );
    }

    #[test]
    fn the_first_answer_wins_and_a_link_of_another_round_decides_nothing() {
        let s = schedule(OnNoAnswer::End);
        let r = open_at(NOW, NOW + d(14));
        let sponsor = |who: &str| Decider::Sponsor(who.into());
        let first = answer(
            &r,
            s.interval_days,
            Some(1),
            false,
            sponsor("a@c.example"),
            NOW + d(1),
            None,
        )
        .unwrap();
        assert_eq!(first.reviews.ended_at(), Some(NOW + d(1)));
        assert_eq!(first.reviews.due_at, None, "no more reviews after an end");
        let late = answer(
            &first.reviews,
            s.interval_days,
            Some(1),
            true,
            sponsor("b@c.example"),
            NOW + d(2),
            None,
        );
        assert_eq!(
            late,
            Err(Refused::Answered(first.reviews.last.clone())),
            "the second answer sees the first"
        );
        let old_link = answer(
            &r,
            s.interval_days,
            Some(0),
            true,
            sponsor("b@c.example"),
            NOW,
            None,
        );
        assert_eq!(old_link, Err(Refused::Answered(None)));
    }

    #[test]
    fn an_answer_is_never_earlier_than_its_review_and_the_default_is_at_the_deadline() {
        let s = schedule(OnNoAnswer::Keep);
        let r = open_at(NOW, NOW + d(14));
        let early = answer(
            &r,
            s.interval_days,
            Some(1),
            true,
            Decider::Sponsor("a@c.example".into()),
            NOW - d(3),
            None,
        )
        .unwrap();
        assert_eq!(early.reviews.last.unwrap().at, NOW);
        assert_eq!(early.next_due, Some(NOW + d(90)));
        let default = answer(
            &r,
            s.interval_days,
            Some(1),
            true,
            Decider::Default,
            NOW + d(15),
            None,
        )
        .unwrap();
        assert_eq!(default.reviews.last.unwrap().at, NOW + d(14));
        assert_eq!(default.next_due, Some(NOW + d(104)));
    }

    #[test]
    fn an_admin_answers_with_or_without_an_open_review() {
        let s = schedule(OnNoAnswer::End);
        let admin = Decider::Operator("operator".into());
        let kept = answer(
            &Reviews::default(),
            s.interval_days,
            None,
            true,
            admin.clone(),
            NOW,
            None,
        )
        .unwrap();
        assert_eq!(kept.next_due, Some(NOW + d(90)));
        let ended = answer(
            &open_at(NOW, NOW + d(14)),
            s.interval_days,
            None,
            false,
            admin,
            NOW,
            None,
        )
        .unwrap();
        assert!(ended.reviews.open.is_none());
        assert_eq!(ended.reviews.ended_at(), Some(NOW));
    }

    #[test]
    fn after_an_end_nothing_is_asked_until_an_admin_restores_the_guest() {
        let s = schedule(OnNoAnswer::End);
        let ended = Reviews {
            round: 3,
            due_at: None,
            open: None,
            last: Some(Decision {
                keep: false,
                by: Decider::Default,
                at: NOW - d(30),
            }),
        };
        let mut g = guest(NOW - d(400));
        g.since = NOW - d(31);
        assert_eq!(next_step(&ended, Some(&s), &g, NOW), Step::Nothing);
        g.since = NOW - d(2);
        assert_eq!(
            next_step(&ended, Some(&s), &g, NOW),
            Step::Schedule {
                due_at: NOW - d(2) + d(90)
            },
            "restored: a new first period from the restore"
        );
    }

    #[test]
    fn reviews_stop_for_guests_that_are_gone_or_no_longer_reviewed() {
        let s = schedule(OnNoAnswer::End);
        let r = open_at(NOW, NOW + d(14));
        let mut g = guest(NOW - d(100));
        assert_eq!(next_step(&r, None, &g, NOW), Step::Close, "policy gone");
        g.gone = true;
        assert_eq!(next_step(&r, Some(&s), &g, NOW), Step::Close);
        let mut warned = guest(NOW - d(100));
        warned.active = false;
        assert_eq!(
            next_step(&Reviews::default(), Some(&s), &warned, NOW),
            Step::Nothing,
            "a guest on its way out is not asked about"
        );
        assert_eq!(
            next_step(&Reviews::default(), None, &guest(NOW), NOW),
            Step::Nothing
        );
    }

    #[test]
    fn a_review_that_opens_late_still_gives_the_sponsors_a_day() {
        let s = schedule(OnNoAnswer::End);
        let r = Reviews {
            due_at: Some(NOW - d(3)),
            ..Reviews::default()
        };
        assert_eq!(
            next_step(&r, Some(&s), &guest(NOW - d(200)), NOW),
            Step::Open {
                deadline: NOW + d(1)
            }
        );
    }

    #[test]
    fn deciders_round_trip() {
        for d in [
            Decider::Sponsor("boss@contoso.example".into()),
            Decider::Operator("operator".into()),
            Decider::Operator("kim@contoso.example".into()),
            Decider::Default,
        ] {
            assert_eq!(Decider::decode(&d.encode()), Some(d));
        }
        assert_eq!(Decider::decode("sponsor:"), None);
        assert_eq!(Decider::decode("someone"), None);
        assert_eq!(Reviews::link_stage(257), 1);
    }
}
