module github.com/noa-server/webhook

go 1.26
