//! Tasks.

use federated_learning_integrity::{EntryTypes, LinkTypes, Task};
use hdk::prelude::*;

use crate::fail;

/// A task with its action hash.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct TaskInfo {
    /// Action hash (the task's id).
    pub hash: ActionHash,
    /// Who created it.
    pub author: AgentPubKey,
    /// When, by its author's clock.
    pub created_at: Timestamp,
    /// The task.
    pub task: Task,
}

fn tasks_path() -> ExternResult<EntryHash> {
    Path::from("tasks").path_entry_hash()
}

/// Publishes a task and indexes it.
#[hdk_extern]
pub fn create_task(task: Task) -> ExternResult<ActionHash> {
    let hash = create_entry(EntryTypes::Task(task))?;
    create_link(tasks_path()?, hash.clone(), LinkTypes::AllTasks, ())?;
    Ok(hash)
}

/// Every task, oldest first (by the author's timestamp, ties by hash).
#[hdk_extern]
pub fn list_tasks() -> ExternResult<Vec<TaskInfo>> {
    let links = get_links(
        LinkQuery::try_new(tasks_path()?, LinkTypes::AllTasks)?,
        GetStrategy::Network,
    )?;
    let mut out = Vec::new();
    for link in links {
        let Some(hash) = link.target.into_action_hash() else {
            continue;
        };
        if let Ok(info) = get_task_info(&hash) {
            out.push(info);
        }
    }
    out.sort_by_key(|t| (t.created_at, t.hash.clone()));
    Ok(out)
}

/// One task by hash.
#[hdk_extern]
pub fn get_task(hash: ActionHash) -> ExternResult<TaskInfo> {
    get_task_info(&hash)
}

pub(crate) fn get_task_info(hash: &ActionHash) -> ExternResult<TaskInfo> {
    let record = get(hash.clone(), GetOptions::default())?
        .ok_or_else(|| fail(format!("task {hash} not found")))?;
    let task = Task::try_from(record.clone()).map_err(|_| fail(format!("{hash} is not a task")))?;
    Ok(TaskInfo {
        hash: hash.clone(),
        author: record.action().author().clone(),
        created_at: record.action().timestamp(),
        task,
    })
}
