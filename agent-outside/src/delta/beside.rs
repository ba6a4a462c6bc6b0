//! The windows of a spilled expanded form made on a `ferry-windows` thread
//! while its deferred rebuild check runs on the object's thread (the
//! check's pieces and the windows then use every core); nothing ships
//! unless the check passes.

use super::analysis::{self, Cx};
use super::{spilled_reference, windows, Attempt, DeltaOptions, Frames, Patched, Spilled};
use anyhow::{Context, Result};
use ferry_protocol::catalog::{Base, FileObject};
use ferry_protocol::path::ObjectKey;

/// The deferred rebuild check of `expanded` (if any), run on this thread
/// while `work` runs on another (which must not reserve from the memory
/// budget: this thread reserved `prepaid` bytes for it first), or before
/// `work` when the check's encoder and `prepaid` do not fit in the budget
/// together. Gives `work`'s result, or `None` if the check failed.
pub(super) fn with_check<T: Send>(
    cx: &Cx<'_>,
    check: Option<(&analysis::Deferred, &std::fs::File)>,
    (prepaid, permit): (u64, &mut ferry_recipe::budget::Permit<'_>),
    work: impl FnOnce(&mut dyn windows::Hold) -> Result<T> + Send,
) -> Result<Option<T>> {
    let Some((check, file)) = check else {
        return work(permit).map(Some);
    };
    // A check whose encoder (a deb's xz encoder, about 100 MiB with its
    // block's output) does not fit in the budget beside what the work was prepaid
    // (zstd's tables at a slow level, the base's reference form) runs first,
    // and the work after it: the two at once took the debs' export at
    // `high` from 191 to 324 MiB.
    let encoder = check.encoder_memory();
    let (checked, made) = if encoder > 0 && prepaid + encoder > ferry_recipe::budget::BUDGET {
        let checked = check.run(cx, file);
        let made = match checked {
            Ok(()) => work(permit),
            Err(_) => return warn_again(cx, checked),
        };
        (checked, made)
    } else {
        let kept = permit.bytes();
        permit.grow(prepaid);
        let share = permit.share(prepaid);
        let both = std::thread::scope(|s| {
            let worker = std::thread::Builder::new()
                .name("ferry-windows".into())
                .spawn_scoped(s, move || work(&mut windows::Prepaid(share)))
                .context("cannot start a thread");
            let checked = check.run(cx, file);
            let made = match worker {
                Ok(w) => w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                Err(e) => Err(e),
            };
            (checked, made)
        });
        permit.shrink(kept);
        both
    };
    if checked.is_err() {
        return warn_again(cx, checked);
    }
    made.map(Some)
}

/// A failed check's warning: the object is analysed again (`None`).
fn warn_again<T>(cx: &Cx<'_>, checked: Result<()>) -> Result<Option<T>> {
    if let Err(e) = checked {
        eprintln!("ferry-out: warning: {e:#}; {} analysed again", cx.key);
    }
    Ok(None)
}

/// The rest of [`super::finish`] for a spilled expanded form against a base
/// the walk looks into: the base's reference form is made, spilled and
/// patched against, on the windows' thread while the deferred rebuild check
/// (if any) runs on this one. The reference form (its inflate is about a
/// second for a layer) used to be made before the check started, with the
/// other core idle. With a check, both are prepaid here: the reference form
/// as guessed ([`super::reference_guess`]: a few MiB when it is made as the
/// base is read, else the base's copy and [`super::EXPANSION`] times it) and
/// the windows' peak against the largest range a window reads; without,
/// each is reserved as it is made, on this thread.
///
/// A check whose recipe copies a base's parse (a cut GNU gzip stream: a
/// layer) copies it as the inside's rebuild does, so the base's form is
/// made first, here, as the base is read (its block starts read on another
/// core), and lends the check its parse read from the base's copy and the
/// spill; the windows are made against that form.
#[allow(clippy::type_complexity)]
pub(super) fn form_beside_check(
    (cx, check): (&Cx<'_>, Option<(&analysis::Deferred, &std::fs::File)>),
    (key, base_key, base): (&ObjectKey, &ObjectKey, &FileObject),
    (src, expanded_blake3): (windows::Source, [u8; 32]),
    (recipe, reused, expansion): (Vec<u8>, bool, u64),
    (opts, level, ropts): (&DeltaOptions, i32, &ferry_recipe::Options),
    permit: &mut ferry_recipe::budget::Permit<'static>,
) -> Result<Attempt> {
    let refs = cx.refs;
    let expanded_len = src.len;
    let guess = super::reference_guess(refs, base, expansion, opts);
    let lends = check.is_some()
        && ferry_recipe::Recipe::from_bytes(&recipe).is_ok_and(|r| r.copies_base_parse());
    let (premade, lent) = if lends {
        let kept = permit.bytes();
        permit.grow(guess);
        let made = super::spill_base_form(refs, base, opts, true)?;
        permit.shrink(kept);
        match made {
            Spilled::Made(form, lent) => {
                let lent = match lent {
                    Some((copy, l)) => {
                        let form_file = form.file.try_clone().with_context(|| {
                            format!("cannot reopen the spilled form of base {}", base.sha256)
                        })?;
                        Some((copy, form_file, l))
                    }
                    None => None,
                };
                (Some(Spilled::Made(form, None)), lent)
            }
            other => (Some(other), None),
        }
    } else {
        (None, None)
    };
    let parse = lent.as_ref().map(|(copy, form, l)| l.base(copy, form));
    let cx = &Cx {
        parse: parse.as_ref(),
        ..*cx
    };
    let prepaid = guess
        + windows::peak(
            expanded_len,
            ferry_protocol::catalog::MAX_WINDOW_REFERENCE,
            opts.window,
            level,
        );
    permit.shrink(0);
    let outcome = (recipe, reused, expanded_len, expanded_blake3);
    beside_check((cx, check), (prepaid, permit), outcome, move |hold| {
        let spilled = match premade {
            Some(Spilled::Made(form, _)) => super::indexed(form)?,
            Some(Spilled::Unusable) => return Ok(None),
            not_made => {
                // Reserved here when no check runs beside (a `Prepaid`
                // holder ignores it: the guess was prepaid).
                let kept = hold.bytes();
                hold.grow(guess);
                let spilled = match not_made {
                    None => spilled_reference(refs, base, ropts, opts)?,
                    Some(_) => super::whole_spilled_reference(refs, base, ropts, opts)?,
                };
                let Some(spilled) = spilled else {
                    return Ok(None);
                };
                hold.shrink(kept);
                spilled
            }
        };
        let made = windows::encode(
            key,
            &src,
            &spilled.form,
            (opts.window, level),
            refs.dir(),
            hold,
        )?;
        let Some(w) = made else {
            return Ok(None);
        };
        let base = spilled.base(base_key, base);
        Ok(Some((Frames::Windows(w), base)))
    })
}

/// Runs `work` (the windows, and what they are made against) on the
/// windows' thread beside the deferred check ([`with_check`], `prepaid`
/// reserved for it first) and gives what the object ships: its patch, or
/// nothing (`work` made none), or `CheckFailed`.
pub(super) fn beside_check(
    (cx, check): (&Cx<'_>, Option<(&analysis::Deferred, &std::fs::File)>),
    (prepaid, permit): (u64, &mut ferry_recipe::budget::Permit<'_>),
    (recipe, reused, expanded_len, expanded_blake3): (Vec<u8>, bool, u64, [u8; 32]),
    work: impl FnOnce(&mut dyn windows::Hold) -> Result<Option<(Frames, Base)>> + Send,
) -> Result<Attempt> {
    Ok(match with_check(cx, check, (prepaid, permit), work)? {
        None => Attempt::CheckFailed,
        Some(made) => Attempt::Done(made.map(|(patch, base)| Patched {
            recipe,
            patch,
            expanded_len,
            expanded_blake3,
            base,
            reused,
        })),
    })
}
