//! `charts/trellis/values.schema.json`: the JSON Schema (draft-07, the dialect Helm
//! reads) of [`Values`], generated like the CRDs and checked in CI.

use k8s_openapi::schemars::generate::SchemaSettings;

use super::values::Values;

/// Where the schema lives in the repository.
pub const PATH: &str = "charts/trellis/values.schema.json";

/// The schema as committed: pretty JSON and a final newline.
pub fn values_schema() -> String {
    let mut settings = SchemaSettings::draft07();
    // One self-contained tree: what an editor shows and Helm reports is the field's path.
    settings.inline_subschemas = true;
    let mut schema = settings.into_generator().into_root_schema_for::<Values>();
    schema.insert("title".to_owned(), "Trellis Helm chart values".into());
    // `meshConfig` is `create` next to a flattened MeshConfigSpec: serde's flatten leaves
    // the object open, but its keys are all known, so typos are worth an error there too.
    if let Some(mesh_config) = schema
        .pointer_mut("/properties/meshConfig")
        .and_then(|s| s.as_object_mut())
    {
        mesh_config.insert("additionalProperties".to_owned(), false.into());
    }
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
