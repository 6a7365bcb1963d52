//! Labels Berth puts on everything it creates. Pruning selects by these labels only.

/// `app.kubernetes.io/managed-by`, always [`MANAGED_BY_VALUE`] on Berth's children.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`] on Berth's children.
pub const MANAGED_BY_VALUE: &str = "berth";
/// The Project a child belongs to.
pub const PROJECT: &str = "berth.dev/project";
/// The MLModel a child belongs to.
pub const MODEL: &str = "berth.dev/model";
/// The Notebook a child belongs to.
pub const NOTEBOOK: &str = "berth.dev/notebook";
/// The UID of the object a child belongs to, on children that hold data and so carry no
/// ownerReference (a Project's namespace and the objects in it): the garbage collector never
/// deletes them, and Berth still tells its own from a namesake's.
pub const OWNER_UID: &str = "berth.dev/owner-uid";
