//! The logic of the console's *Notebooks* and *Models* pages (issue 15), as pure functions: no
//! server, no templates, no API calls. The routes read the objects as the user, call these, and
//! render the structs; a form's route calls a parser and either creates the object it returns
//! (as the user: the API server is the authority and checks it again) or shows its errors.
//!
//! For the templates' author:
//! - **Every string in every struct is raw text.** Nothing here is HTML-escaped or marked safe:
//!   the template escapes every field (askama's default). A template name such as
//!   `<b>lab</b>` arrives as those characters.
//! - **Errors** are `Vec<form::FieldError>`: `field` is the form field's name (`"form"` for the
//!   whole form), `message` plain words saying what to do. Show each beside its field and keep
//!   the submitted values in the form.
//! - **Actions** (`form::Action`) carry the exact request: `method` `PATCH` with `patch` (a JSON
//!   merge patch, `application/merge-patch+json`, `notebooks::MERGE_PATCH`), `DELETE`, or `GET`
//!   with `href` for a link. Draw a button per action (a POST form with the CSRF token to the
//!   route, which sends that request as the user); the list says what makes sense, the API server
//!   decides what is allowed (a viewer's stop is refused there, not hidden here).
//!
//! What each gives:
//! - [`spawner::spawner`] (templates, namespace labels) → [`spawner::Spawner`]: the templates
//!   offered to the project (`projects` selector matched by the operator's own
//!   `ProjectSelector::matches`), each with its visible images (hidden ones left out, `note`
//!   saying `deprecated` or `→ <id>: <message>`, the default `selected`, labels), its bundles in
//!   human units (`2 CPUs, 8 GiB, 1 × nvidia.com/gpu, /dev/shm 1 GiB`), whether custom images
//!   and explicit resources are allowed with their maxima, and the idle timeout's default and
//!   bounds.
//! - [`spawn::parse_spawn`] (form fields, [`spawn::SpawnContext`]) → the `Notebook` to create,
//!   or field errors. Its module docs list the field names the form must use; [`volumes`] checks
//!   the volume rows.
//! - [`notebooks::notebook_view`] (Notebook, its pod, its Events, now) →
//!   [`notebooks::NotebookView`]: the row and the detail page: phase in words, image with its
//!   redirect/deprecation notice, bundle or resources, the console URL `/notebook/<ns>/<name>/`,
//!   conditions with a headline and Berth's message (what to do), idle and culled state (with
//!   the time left before an idle notebook is stopped), the pod in words, and the actions open
//!   (Running: a link to `/notebook/<ns>/<name>/lab`), start/resume (stopped or culled:
//!   `{"spec":{"stopped":false}}`), stop (not stopped: `{"spec":{"stopped":true}}`), delete.
//! - [`resize::parse_resize`] (form fields, the Notebook, templates) → the merge patch that
//!   moves it to another bundle or to explicit resources (within the template's maximum), with
//!   nothing of the other left behind; a resize restarts the notebook with its home.
//! - [`models::model_view`] (MLModel, its Events) → [`models::ModelView`]: phase, URL, the
//!   serving, asked-for and canary versions, the last failure, auth (mode, sentence, token
//!   command, a ready-to-copy `call` for the Open Inference Protocol, as docs/models.md
//!   "Calling a model" writes it) and the actions promote and rollback (with a canary) and delete.
//! - [`deploy::parse_deploy`] (form fields, namespace, existing model names) → the `MLModel` to
//!   create, or field errors; [`deploy::parse_canary`] (form fields, the model) → the merge
//!   patch that starts or replaces its canary.
//!
//! Reading the form: values are trimmed, empty means absent, a field the parser reads sent twice
//! is an error, fields it does not read (the CSRF token) are ignored. Names refused by the
//! parsers are refused by the CRDs, and what they accept passes the CRDs' schemas and CEL
//! patterns (tests_schema.rs, tests_cel.rs); the API server and the controllers stay the
//! authority (quota, a claim in use by another pod, RBAC).
//! - [`form`]: the shared pieces (field errors, bounded form reading, names, quantities and
//!   durations in words, a JSON merge patch between two objects).

pub mod deploy;
pub mod form;
pub mod models;
pub mod notebooks;
pub mod resize;
pub mod spawn;
pub mod spawner;
pub mod volumes;

#[cfg(test)]
mod tests_cel;
#[cfg(test)]
mod tests_deploy;
#[cfg(test)]
mod tests_models;
#[cfg(test)]
mod tests_notebooks;
#[cfg(test)]
mod tests_resize;
#[cfg(test)]
mod tests_schema;
#[cfg(test)]
mod tests_spawn;
#[cfg(test)]
mod tests_spawner;
#[cfg(test)]
mod tests_volumes;
