// Package httpstatus owns Writer, an http.ResponseWriter that notes the
// status code a handler answered with, for the gateway's and the API's
// counts.
package httpstatus
