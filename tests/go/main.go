// Command stscaller is seed 002's app in small: the AWS SDK for Go v2 with the container
// credentials provider (AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN,
// read by config.LoadDefaultConfig) calling STS GetCallerIdentity over and over. It prints a
// line each time the outcome changes ("arn: ..." or "error: ..."), so a test can watch an
// endpoint go away and come back.
//
// Debian 12's SDK (1.17.1) predates the AWS_ENDPOINT_URL_<SERVICE> variables (SDK 1.25), so
// the STS endpoint is taken from AWS_ENDPOINT_URL_STS (or AWS_ENDPOINT_URL) here, through an
// EndpointResolverWithOptions, as the newer SDKs do on their own.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func endpoint() string {
	if url := os.Getenv("AWS_ENDPOINT_URL_STS"); url != "" {
		return url
	}
	return os.Getenv("AWS_ENDPOINT_URL")
}

func main() {
	ctx := context.Background()
	url := endpoint()
	resolver := aws.EndpointResolverWithOptionsFunc(
		func(service, region string, options ...interface{}) (aws.Endpoint, error) {
			if service == sts.ServiceID && url != "" {
				return aws.Endpoint{URL: url, SigningRegion: region, HostnameImmutable: true}, nil
			}
			return aws.Endpoint{}, &aws.EndpointNotFoundError{}
		})
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithEndpointResolverWithOptions(resolver),
		// One attempt per call: the loop below is the retry, and each outcome is seen.
		config.WithRetryMaxAttempts(1))
	if err != nil {
		fmt.Println("config error:", err)
		os.Exit(2)
	}
	client := sts.NewFromConfig(cfg)
	for call := 1; ; call++ {
		out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			fmt.Printf("call %d: error: %v\n", call, err)
		} else {
			fmt.Printf("call %d: arn: %s\n", call, aws.ToString(out.Arn))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
