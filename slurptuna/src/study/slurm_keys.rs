//! `[slurm]`: the Slurm scheduler's own options (`slurm::SlurmOptions`), one key per field under
//! the field's name.

use ::slurm::SlurmOptions;

use super::convert::{Cx, FromStudyValue, Invalid};
use super::doc::{Located, Table, Value};
use super::reader::unknown_key;

fn assign<T: FromStudyValue>(slot: &mut T, v: &Value, cx: &Cx<'_>) -> Result<(), Invalid> {
    *slot = T::from_study(v, cx)?;
    Ok(())
}

/// The keys and their setter, from one list of the fields. The setter destructures
/// `SlurmOptions` without `..`: a field added to it does not compile until it is listed here.
macro_rules! slurm_fields {
    ($($field:ident),* $(,)?) => {
        /// Every key of `[slurm]`.
        pub(crate) const KEYS: &[&str] = &[$(stringify!($field)),*];

        fn set(o: &mut SlurmOptions, key: &str, v: &Value, cx: &Cx<'_>) -> Option<Result<(), Invalid>> {
            let SlurmOptions { $($field),* } = o;
            Some(match key {
                $( stringify!($field) => assign($field, v, cx), )*
                _ => return None,
            })
        }
    };
}

slurm_fields!(
    slurm_account,
    slurm_partition,
    slurm_gres,
    slurm_constraint,
    slurm_extra_args,
    job_name_prefix,
    scratch_dir,
    result_check_interval,
    slurm_rpc_per_second,
    slurm_requeue,
    slurm_max_requeues,
);

/// `[slurm]` as Slurm options (the defaults for keys not given). Their rules are checked with
/// the other options (`SlurmOptions::validate`), errors pointed at the key.
pub(crate) fn read(t: &Table, cx: &Cx<'_>) -> Result<SlurmOptions, Located> {
    let mut o = SlurmOptions::default();
    for (key, value) in &t.entries {
        let dotted = format!("slurm.{}", key.name);
        match set(&mut o, &key.name, value, cx) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(Located::new(&e.origin, dotted, e.message)),
            None => return Err(unknown_key(&key.origin, &dotted, &key.name, KEYS)),
        }
    }
    Ok(o)
}
