//! `wharf admin`: organizations and API clients, from the command line.

use anyhow::Context;
use clap::Subcommand;
use wharf_engine::tenancy::Tenancy;

use crate::config::{Settings, StoreArgs};
use crate::server::{master_key, open_store};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an organization and its first API client (prints the credentials once)
    CreateOrg {
        /// The organization's name
        #[arg(long)]
        name: String,
    },
    /// List organizations
    ListOrgs,
    /// Create an API client for an organization (prints the credentials once)
    CreateClient {
        /// Organization id (24 hex characters)
        #[arg(long)]
        org: String,
        /// A name to recognize the client by
        #[arg(long, default_value = "api-client")]
        name: String,
    },
    /// List an organization's API clients (ids and names; secrets are never shown again)
    ListClients {
        /// Organization id
        #[arg(long)]
        org: String,
    },
    /// Give an API client a new secret; the old one and the client's access tokens stop
    /// working (on a running server within a second)
    RotateSecret {
        /// The client id
        #[arg(long)]
        client: String,
    },
    /// Delete an API client; its secret and access tokens stop working (on a running server
    /// within a second)
    DeleteClient {
        /// The client id
        #[arg(long)]
        client: String,
    },
}

/// Runs an admin command and prints its result as JSON.
pub async fn run(store_args: &StoreArgs, command: AdminCommand) -> anyhow::Result<()> {
    let settings = Settings::for_store(store_args)?;
    let store = open_store(&settings).await?;
    store.migrate().await.context("cannot migrate the database")?;
    let tenancy = Tenancy::new(store.clone(), master_key(&settings)?);
    let output = match command {
        AdminCommand::CreateOrg { name } => serde_json::to_value(tenancy.create_organization(&name, None).await?)?,
        AdminCommand::ListOrgs => serde_json::to_value(tenancy.organizations().await?)?,
        AdminCommand::CreateClient { org, name } => serde_json::to_value(tenancy.create_client(&org, &name).await?)?,
        AdminCommand::ListClients { org } => {
            let clients = tenancy.clients(&org).await?;
            serde_json::Value::Array(
                clients
                    .iter()
                    .map(|c| serde_json::json!({"clientId": c.id, "name": c.name, "createdAt": c.created_at, "updatedAt": c.updated_at}))
                    .collect(),
            )
        }
        AdminCommand::RotateSecret { client } => serde_json::to_value(tenancy.rotate_client_secret(&client).await?)?,
        AdminCommand::DeleteClient { client } => {
            let deleted = tenancy.delete_client(&client).await?;
            serde_json::json!({"deleted": true, "clientId": deleted.id, "organizationId": deleted.org_id, "name": deleted.name})
        }
    };
    println!("{output:#}");
    store.close().await;
    Ok(())
}
