package main

import _ "example.com/layered/server"

func main() {}
