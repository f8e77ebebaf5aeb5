# A typical Port mapping for GitHub pull_request and push events, as one jq object:
# identifier, title, six properties and two relations.
{
  identifier: ((.body.pull_request.id // .body.head_commit.id) | tostring),
  title: (.body.pull_request.title // .body.head_commit.message),
  properties: {
    author: (.body.pull_request.user.login // .body.pusher.name),
    url: (.body.pull_request.html_url // .body.compare),
    status: (if .headers["x-github-event"] == "push" then "pushed" else .body.pull_request.state end),
    branch: (.body.pull_request.head.ref // (.body.ref | ltrimstr("refs/heads/"))),
    createdAt: (.body.pull_request.created_at // .body.head_commit.timestamp),
    labels: [.body.pull_request.labels[]?.name]
  },
  relations: {
    repository: .body.repository.full_name,
    sender: .body.sender.login
  }
}
