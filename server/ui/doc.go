// Package ui holds the dashboard's assets: the html/template pages and the
// stylesheet and script they load, embedded in ferry's executable so the
// dashboard needs no install step and fetches nothing from elsewhere.
//
// The handlers that fill the pages live in package server (ui*.go): they
// read through the same API, with the same role checks, as the CLI.
package ui
