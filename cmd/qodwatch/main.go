// Command qodwatch watches network quality per UE and buys a QoD session only
// when it is needed.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("qodwatch (development)")
		return
	}
	fmt.Fprintln(os.Stderr, "usage: qodwatch version")
	os.Exit(2)
}
