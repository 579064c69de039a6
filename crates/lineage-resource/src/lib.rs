//! lineage-resource
